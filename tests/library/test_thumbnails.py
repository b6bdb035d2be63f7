"""library.thumbnails: small, upright, opaque thumbnails cached by content hash."""

from __future__ import annotations

import errno
import io
import os
import pickle
import time

import pytest
from PIL import Image
from sample_images import image_bytes

from library.thumbnails import MAX_SIDE, SaveOutcome, ThumbnailCache

SHA_A, SHA_B = "ab" + "0" * 62, "cd" + "1" * 62


def test_make_from_shrinks_to_512_on_the_long_side_keeping_the_aspect(thumbnail_cache):
    thumb = thumbnail_cache.make_from(Image.new("RGB", (1600, 900), "green"))
    assert thumb.size == (MAX_SIDE, 288)
    small = thumbnail_cache.make_from(Image.new("RGB", (100, 40), "green"))
    assert small.size == (100, 40)  # never enlarged


def test_make_from_applies_exif_orientation_of_an_opened_image(thumbnail_cache):
    im = Image.new("RGB", (80, 40), "blue")
    im.paste((255, 0, 0), (0, 0, 20, 20))
    with Image.open(io.BytesIO(image_bytes("JPEG", image=im, orientation=6))) as opened:
        thumb = thumbnail_cache.make_from(opened)
    assert thumb.size == (40, 80)
    assert thumb.getpixel((35, 5))[0] > 200  # the corner block moved to the top right


def test_make_from_composites_transparency_and_leaves_the_source_alone(tmp_path):
    cache = ThumbnailCache(tmp_path, background=(0, 0, 0))
    source = Image.new("RGBA", (2000, 1000), (255, 255, 255, 0))
    thumb = cache.make_from(source)
    assert thumb.mode == "RGB" and thumb.getpixel((10, 10)) == (0, 0, 0)
    assert source.size == (2000, 1000) and source.mode == "RGBA"
    rgb = Image.new("RGB", (1024, 1024))
    cache.make_from(rgb)
    assert rgb.size == (1024, 1024)


def test_save_has_load_remove_with_sharded_paths(thumbnail_cache):
    assert not thumbnail_cache.has(SHA_A)
    outcome = thumbnail_cache.save(SHA_A, Image.new("RGB", (32, 16), "red"))
    assert outcome == SaveOutcome(True) and outcome
    path = thumbnail_cache.path_for(SHA_A)
    assert path.parent.name == "ab" and path.name == SHA_A + ".jpg"
    assert thumbnail_cache.has(SHA_A)
    assert thumbnail_cache.load(SHA_A).size == (32, 16)
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind
    assert thumbnail_cache.remove(SHA_A) and not thumbnail_cache.has(SHA_A)
    assert not thumbnail_cache.remove(SHA_A)
    assert thumbnail_cache.load(SHA_A) is None


def test_path_for_rejects_anything_but_a_sha256(thumbnail_cache):
    for bad in ("../../etc/passwd", "AB" + "0" * 62, "ab"):
        with pytest.raises(ValueError):
            thumbnail_cache.path_for(bad)


def test_a_full_disk_is_reported_not_raised_and_leaves_no_partial_file(thumbnail_cache,
                                                                     monkeypatch):
    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", disk_full)
    outcome = thumbnail_cache.save(SHA_A, Image.new("RGB", (8, 8)))
    assert not outcome
    assert "No space left on device" in outcome.error
    assert not thumbnail_cache.has(SHA_A)
    assert os.listdir(thumbnail_cache.path_for(SHA_A).parent) == []


def test_an_unwritable_cache_location_is_reported(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    outcome = ThumbnailCache(tmp_path / "file").save(SHA_A, Image.new("RGB", (8, 8)))
    assert not outcome and "cannot write thumbnail" in outcome.error


def test_prune_keeps_only_the_given_hashes_and_stale_temp_files_go(thumbnail_cache):
    for sha in (SHA_A, SHA_B):
        thumbnail_cache.save(sha, Image.new("RGB", (8, 8)))
    shard = thumbnail_cache.path_for(SHA_A).parent
    stale, fresh = shard / ".old.tmp", shard / ".writing.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert thumbnail_cache.prune(keep={SHA_A}) == 2  # SHA_B and the stale temp file
    assert thumbnail_cache.has(SHA_A) and not thumbnail_cache.has(SHA_B)
    assert fresh.exists() and not stale.exists()


def test_the_cache_is_picklable_for_worker_processes(thumbnail_cache):
    clone = pickle.loads(pickle.dumps(thumbnail_cache))
    assert clone.root == thumbnail_cache.root and clone.max_side == thumbnail_cache.max_side
