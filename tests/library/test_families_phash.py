"""Perceptual hashes on generated families, through the real ingest path (library.ingest).

Every picture (scikit-image photos and random-but-structured synthetic pictures) is saved as
PNG, JPEG q70, half size, +8 % brightness and WebP; each copy is ingested as a file, and the
hashes ingest computed from its one decode are grouped at the default distance. Every
family must come out as exactly one group, and no two families may merge.

The figures behind the default distance (README, library.families.DEFAULT_DISTANCE) are
printed: run with `-s` to see the worst copy and the closest stranger.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from family_images import PHOTOS, structured, variants

from library import families
from library.families import DEFAULT_DISTANCE, group_hashes, hamming
from library.ingest import ingest_file

pytest.importorskip("skimage")
SYNTHETIC = 24


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> dict[str, dict[str, int]]:
    """family name -> variant name -> the phash ingest stored for that file."""
    from family_images import photo

    root: Path = tmp_path_factory.mktemp("families")
    pictures = [(name, photo(name)) for name in PHOTOS]
    pictures += [(f"synthetic{seed}", structured(seed, (768, 768) if seed % 3 else (640, 896)))
                 for seed in range(SYNTHETIC)]
    hashes: dict[str, dict[str, int]] = {}
    for name, picture in pictures:
        hashes[name] = {}
        for variant, (suffix, data) in variants(picture).items():
            path = root / f"{name}-{variant}{suffix}"
            path.write_bytes(data)
            result = ingest_file(str(path))
            assert result.ok, result.error
            assert result.phash is not None
            hashes[name][variant] = result.phash
    return hashes


def test_every_copy_groups_with_its_original_and_no_families_merge(ingested):
    ids, values, family_of = [], [], {}
    for number, (name, by_variant) in enumerate(ingested.items()):
        for offset, value in enumerate(by_variant.values()):
            content_id = number * 10 + offset
            ids.append(content_id)
            values.append(value)
            family_of[content_id] = name
    groups = group_hashes(ids, values, DEFAULT_DISTANCE)
    as_families = [{family_of[cid] for cid in group} for group in groups]
    assert all(len(names) == 1 for names in as_families), "two different pictures merged"
    assert sorted(names.pop() for names in as_families) == sorted(ingested)
    assert all(len(group) == 5 for group in groups)  # every copy found


def test_the_default_distance_sits_between_copies_and_strangers(ingested):
    worst_copy = max(hamming(v["png"], h) for v in ingested.values() for h in v.values())
    closest = min(
        (min(hamming(x, y) for x in ingested[a].values() for y in ingested[b].values()), a, b)
        for a, b in itertools.combinations(ingested, 2))
    print(f"\nworst copy: {worst_copy} bits; closest different pictures: {closest[0]} bits "
          f"({closest[1]} / {closest[2]}); default distance {DEFAULT_DISTANCE}")
    assert worst_copy <= DEFAULT_DISTANCE < closest[0]


def test_ingest_hashes_the_picture_it_already_decoded(tmp_path, monkeypatch):
    """One decode per file: the hash comes from the decoded picture (Image.open once)."""
    from family_images import photo
    from PIL import Image

    path = tmp_path / "one.png"
    path.write_bytes(variants(photo("coffee"))["png"][1])
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    result = ingest_file(str(path))
    assert result.phash is not None and len(opened) == 1
    # And it is the hash of that picture, not of something else.
    monkeypatch.setattr(Image, "open", real_open)
    with Image.open(path) as image:
        expected = families.to_signed64(families.perceptual_hash(image.convert("RGB")))
    assert hamming(result.phash, expected) <= 2


def test_a_picture_that_cannot_be_hashed_is_still_indexed(tmp_path, monkeypatch):
    path = tmp_path / "one.png"
    path.write_bytes(variants(structured(1))["png"][1])

    def broken(_image):
        raise RuntimeError("boom")

    monkeypatch.setattr("library.ingest.perceptual_hash", broken)
    result = ingest_file(str(path))
    assert result.ok and result.phash is None
