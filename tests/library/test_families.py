"""The family rules (library.families): stack keys, hash grouping, the keeper."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from db.families import FamilyMember
from library import families
from library.families import (
    DEFAULT_DISTANCE,
    choose_keeper,
    close_pairs,
    from_signed64,
    group_hashes,
    hamming,
    stack_key,
    to_signed64,
)

# --- stack keys ---------------------------------------------------------------------------------


def test_same_prompt_and_model_share_a_stack_whatever_the_seed():
    # Seeds, steps and sizes are not inputs at all; the fields that are decide.
    assert stack_key("a cat", "blurry", "sdxl") == stack_key("a cat", "blurry", "sdxl")
    assert len(stack_key("a cat", "blurry", "sdxl")) == 16


def test_another_model_prompt_or_negative_prompt_is_another_stack():
    base = stack_key("a cat", "blurry", "sdxl")
    assert stack_key("a cat", "blurry", "sd15") != base
    assert stack_key("a dog", "blurry", "sdxl") != base
    assert stack_key("a cat", "watermark", "sdxl") != base
    assert stack_key("a cat", None, "sdxl") != base


def test_no_prompt_means_no_stack():
    assert stack_key(None, "blurry", "sdxl") is None
    assert stack_key("   \n ", "blurry", "sdxl") is None
    assert families.stack_key_of(None) is None


def test_whitespace_case_and_unicode_forms_do_not_split_a_stack():
    base = stack_key("a red cat, masterpiece", "blurry", "sdxl")
    assert stack_key("  A  Red\ncat,\tmasterpiece ", "Blurry ", "SDXL") == base
    assert stack_key("a ｒｅｄ cat, masterpiece", "blurry", "sdxl") == base  # full-width letters
    # Punctuation and weights change the picture: they stay significant.
    assert stack_key("a (red:1.2) cat, masterpiece", "blurry", "sdxl") != base


def test_a_checkpoint_path_and_suffix_name_the_same_model():
    base = stack_key("a cat", "", "juggernaut_v9")
    assert stack_key("a cat", "", "SDXL/juggernaut_v9.safetensors") == base
    assert stack_key("a cat", "", "C:\\models\\juggernaut_v9.ckpt") == base
    assert stack_key("a cat", "", "juggernaut_v10") != base


# --- hashes and grouping ------------------------------------------------------------------------

def test_signed_storage_round_trips_every_64_bit_value():
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 0x8F00_0000_0000_0001):
        stored = to_signed64(value)
        assert -(1 << 63) <= stored < 1 << 63
        assert from_signed64(stored) == value
    assert hamming(to_signed64((1 << 64) - 1), 0) == 64


def _brute_pairs(hashes: list[int], distance: int) -> set[tuple[int, int]]:
    return {(i, j) for i, j in itertools.combinations(range(len(hashes)), 2)
            if (hashes[i] ^ hashes[j]).bit_count() <= distance}


@pytest.mark.parametrize("distance", [0, 3, 8, 12])
def test_band_index_finds_exactly_the_pairs_that_all_pairs_would(distance):
    rng = np.random.default_rng(distance)
    base = [int(h) for h in rng.integers(0, 1 << 63, size=150, dtype=np.int64)]
    base = [h | (int(rng.integers(0, 2)) << 63) for h in base]  # the top bit used too
    hashes = list(base)
    for h in base[:60]:  # copies at every distance from 0 to 14
        flips = rng.choice(64, size=int(rng.integers(0, 15)), replace=False)
        for bit in flips:
            h ^= 1 << int(bit)
        hashes.append(h)
    found = close_pairs(np.array(hashes, dtype=np.uint64), distance)
    assert {tuple(p) for p in found.tolist()} == _brute_pairs(hashes, distance)


def test_groups_are_connected_families_labelled_by_their_members():
    a = 0x0123_4567_89AB_CDEF
    b = a ^ 0b111  # 3 bits from a
    c = b ^ (0b11111 << 20)  # 5 bits from b, 8 from a: joined through b
    far = ~a & ((1 << 64) - 1)
    groups = group_hashes([10, 11, 12, 13], [to_signed64(h) for h in (a, b, c, far)], 5)
    assert groups == [[10, 11, 12]]
    assert group_hashes([10, 11, 12, 13], [a, b, c, far], 2) == []
    assert group_hashes([], [], DEFAULT_DISTANCE) == []


def test_an_impossible_distance_is_refused():
    with pytest.raises(ValueError):
        group_hashes([1, 2], [0, 0], 40)


# --- the keeper --------------------------------------------------------------------------------

def member(cid: int, decision: str = "none", rating: int = 0, size: int = 512,
           fmt: str = "PNG", mtime: int = 100) -> FamilyMember:
    return FamilyMember(cid, decision, rating, size, size, fmt, mtime, 0, [f"/p/{cid}"], [cid])


def test_keeper_rule_applies_its_criteria_in_order():
    # Accepted beats a higher rating; rating beats pixels; pixels beat format; format
    # beats age; a rejected picture comes after undecided ones.
    assert choose_keeper([member(1, rating=5), member(2, decision="accepted")]).content_id == 2
    assert choose_keeper([member(1, size=1024), member(2, rating=1)]).content_id == 2
    assert choose_keeper([member(1, fmt="PNG"), member(2, size=1024, fmt="JPEG")]
                         ).content_id == 2
    assert choose_keeper([member(1, fmt="JPEG", mtime=1), member(2, fmt="PNG", mtime=9)]
                         ).content_id == 2
    assert choose_keeper([member(1, mtime=9), member(2, mtime=1)]).content_id == 2
    assert choose_keeper([member(1, decision="rejected", rating=5), member(2)]).content_id == 2


def test_keeper_does_not_depend_on_the_order_rows_come_in():
    group = [member(3), member(1), member(2)]
    assert {choose_keeper(list(p)).content_id for p in itertools.permutations(group)} == {1}
    with pytest.raises(ValueError):
        choose_keeper([])


def test_identical_hashes_group_without_pairing_every_copy(monkeypatch):
    """A thousand flat pictures share one hash: one group, found without 500k candidates."""
    checked = []
    real_check = families._check
    monkeypatch.setattr(families, "_check", lambda *args, **kw: (
        checked.append(int((args[2][args[0]] * args[2][args[1]]).sum())),
        real_check(*args, **kw))[1])
    ids = list(range(1000)) + [5000]
    hashes = [0x00FF_00FF_00FF_00FF] * 1000 + [0x00FF_00FF_00FF_00FE]
    assert group_hashes(ids, hashes, 2) == [ids]
    assert sum(checked) < 10
    assert families.max_distance(hashes) == 1


def test_candidates_are_checked_in_bounded_slices(monkeypatch):
    monkeypatch.setattr(families, "_MAX_CANDIDATES", 7)
    rng = np.random.default_rng(5)
    hashes = [int(h) for h in rng.integers(0, 1 << 20, size=300)]  # crowded low bits
    found = close_pairs(np.array(hashes, dtype=np.uint64), 6)
    assert {tuple(p) for p in found.tolist()} == _brute_pairs(hashes, 6)


def test_the_perceptual_hash_is_imagehash_phash_bit_for_bit():
    """library.families.perceptual_hash writes out imagehash.phash's arithmetic (for speed);
    on the same 128 px greyscale input both must give the same 64 bits."""
    imagehash = pytest.importorskip("imagehash")
    from family_images import PHOTOS, photo, structured, variants
    from PIL import Image

    from library.decode import decode_bytes

    pictures = [photo(name, 512) for name in PHOTOS[:8]]
    pictures += [structured(seed, (384, 512)) for seed in range(8)]
    compared = 0
    for picture in pictures:
        for _suffix, data in variants(picture).values():
            decoded = decode_bytes(data).image
            ours = families.perceptual_hash(decoded)
            factor = min(decoded.size) // 128
            grey = (decoded.reduce(factor) if factor > 1 else decoded).convert("L")
            grey = grey.resize((128, 128), Image.Resampling.BOX)
            reference = int(str(imagehash.phash(grey)), 16)
            assert ours == reference
            compared += 1
    assert compared == 80
