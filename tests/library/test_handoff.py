"""Decode once: indexing hands its decoded picture on to the analysis (library.handoff).

What must hold for that to be safe: the handed-on picture is exactly the one the pipeline
decodes itself, for every kind of file; what indexing derives from it (thumbnail, hash, size)
is what it derived before; the pipeline uses it instead of the file; and the store stays
bounded in bytes and in time."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sample_images import image_bytes, noise_picture

import library.handoff as handoff_module
from inference import preprocess
from inference.pipeline import ContentChanged, Job, Pipeline
from library.decode import decode_bytes
from library.families import DEFAULT_DISTANCE, perceptual_hash
from library.handoff import PictureHandoff, picture_bytes
from library.ingest import ingest_file
from library.scan import LibraryIndexer
from library.thumbnails import ThumbnailCache


def _png(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def _generated(size: tuple[int, int], seed: int) -> Image.Image:
    """Like generator output (smooth shapes plus grain), so perceptual hashes mean something."""
    return noise_picture(size, seed=seed)


def _transparent_palette() -> bytes:
    im = _generated((300, 200), 3).convert("P")
    out = io.BytesIO()
    im.save(out, "PNG", transparency=0)
    return out.getvalue()


def _sixteen_bit() -> bytes:
    grey = np.asarray(_generated((200, 120), 2).convert("L"), dtype=np.uint16) * 257
    return _png(Image.fromarray(grey))


def _with_alpha() -> bytes:
    im = _generated((640, 480), 4).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize(im.size))
    return _png(im)


# Every path through both decoders: full-size formats, alpha kept (tagger) vs composited,
# palette transparency, 16-bit grey, JPEG decoded at reduced DCT size, a picture large
# enough to be reduced for the models, EXIF orientation, an animated first frame.
CASES = {
    "png-rgb-1024": lambda: _png(_generated((1024, 1024), 1)),
    "png-rgba": _with_alpha,
    "png-palette-transparent": _transparent_palette,
    "png-grey": lambda: image_bytes("PNG", image=_generated((333, 517), 5).convert("L")),
    "png-16-bit": _sixteen_bit,
    "png-large-reduced": lambda: image_bytes("PNG", image=_generated((3904, 1904), 6)),
    "jpeg-draft": lambda: image_bytes("JPEG", image=_generated((2400, 1600), 7)),
    "jpeg-rotated": lambda: image_bytes("JPEG", image=_generated((1200, 800), 8), orientation=6),
    "png-rotated": lambda: image_bytes("PNG", image=_generated((304, 208), 9), orientation=8),
    "webp": lambda: image_bytes("WEBP", image=_generated((512, 768), 10)),
    "gif-animated": lambda: image_bytes("GIF", size=(200, 150), seed=11, animated=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_handed_on_picture_is_the_one_the_pipeline_decodes(case):
    data = CASES[case]()
    handed = decode_bytes(data, for_analysis=True).analysis
    own = preprocess.decode_bytes(data)
    assert handed is not None
    assert (handed.mode, handed.size) == (own.mode, own.size)
    assert np.array_equal(np.asarray(handed), np.asarray(own))


# Decoded at another size before the thumbnail: a JPEG at 1/1 DCT scale rather than 1/2, a
# large PNG reduced 2× rather than 3×; 16-bit grey rounded rather than truncated to 8 bits.
NOT_BIT_EXACT = {"jpeg-draft", "jpeg-rotated", "png-large-reduced", "png-16-bit"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_what_indexing_derives_does_not_change(case):
    data = CASES[case]()
    usual, derived = decode_bytes(data), decode_bytes(data, for_analysis=True)
    assert (derived.format, derived.width, derived.height) == \
        (usual.format, usual.width, usual.height)
    assert derived.image.mode == "RGB"
    cache = ThumbnailCache(Path("/nonexistent"))  # make_from only: nothing is written
    usual_thumb, derived_thumb = cache.make_from(usual.image), cache.make_from(derived.image)
    hash_bits = bin(perceptual_hash(derived.image) ^ perceptual_hash(usual.image)).count("1")
    if case not in NOT_BIT_EXACT:
        assert derived.image.size == usual.image.size
        assert np.array_equal(np.asarray(derived_thumb), np.asarray(usual_thumb))
        assert hash_bits == 0
        return
    # Shrunk from another size, the short side may round the other way (a 1 px shift of the
    # grain): compared at a common size, the pictures agree.
    assert max(abs(a - b) for a, b in zip(derived_thumb.size, usual_thumb.size)) <= 1

    def common(im: Image.Image) -> np.ndarray:
        return np.asarray(im.resize((32, 32), Image.Resampling.BOX), dtype=np.int16)

    assert np.abs(common(derived_thumb) - common(usual_thumb)).mean() < 2.0
    # Duplicates are grouped up to DEFAULT_DISTANCE (8) bits apart: well inside it.
    assert hash_bits <= DEFAULT_DISTANCE // 2


def test_ingest_offers_the_picture_under_the_contents_hash(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(image_bytes("PNG", size=(320, 240), seed=1))
    pictures = PictureHandoff()
    with_handoff = ingest_file(str(path), pictures=pictures)
    without = ingest_file(str(path))
    assert with_handoff.ok and with_handoff.sha256 == without.sha256
    assert (with_handoff.phash, with_handoff.width, with_handoff.height) == \
        (without.phash, without.width, without.height)
    taken = pictures.take(with_handoff.sha256)
    assert taken is not None
    assert np.array_equal(np.asarray(taken), np.asarray(preprocess.decode(path).image))
    assert pictures.take(with_handoff.sha256) is None  # taken once
    assert (pictures.stats.offered, pictures.stats.taken, pictures.stats.missed) == (1, 1, 1)


def test_a_broken_file_offers_nothing(tmp_path):
    path = tmp_path / "half.png"
    path.write_bytes(image_bytes("PNG", size=(320, 240))[:300])
    pictures = PictureHandoff()
    assert ingest_file(str(path), pictures=pictures).error
    assert len(pictures) == 0 and pictures.stats.offered == 0


def test_the_oldest_pictures_go_first_beyond_the_budget():
    one = Image.new("RGB", (100, 100))
    pictures = PictureHandoff(max_bytes=2 * picture_bytes(one))
    for name in ("a", "b", "c"):
        pictures.offer(name, one.copy())
    assert pictures.take("a") is None  # evicted: the oldest
    assert pictures.take("b") is not None and pictures.take("c") is not None
    assert pictures.stats.evicted == 1 and pictures.held_bytes == 0


def test_a_picture_larger_than_the_budget_is_not_kept():
    pictures = PictureHandoff(max_bytes=1000)
    pictures.offer("big", Image.new("RGB", (100, 100)))
    assert len(pictures) == 0 and pictures.held_bytes == 0


def test_pictures_nobody_takes_expire(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(handoff_module.time, "monotonic", lambda: now[0])
    pictures = PictureHandoff(max_age_s=30.0)
    pictures.offer("old", Image.new("L", (10, 10)))
    now[0] += 20.0
    pictures.offer("young", Image.new("L", (10, 10)))
    now[0] += 15.0  # "old" is 35 s old, "young" 15 s
    pictures.expire()
    assert pictures.take("old") is None
    assert pictures.take("young") is not None
    assert pictures.stats.expired == 1 and pictures.held_bytes == 0


def test_concurrent_offers_and_takes_keep_the_byte_count_right():
    pictures = PictureHandoff(max_bytes=10 * picture_bytes(Image.new("RGB", (32, 32))))

    def offer(start: int) -> None:
        for i in range(start, start + 200):
            pictures.offer(str(i), Image.new("RGB", (32, 32)))
            pictures.take(str(i - 3))

    threads = [threading.Thread(target=offer, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pictures.held_bytes == len(pictures) * picture_bytes(Image.new("RGB", (32, 32)))
    assert pictures.held_bytes <= pictures.max_bytes


def test_the_pipeline_analyses_the_handed_picture_not_the_file(tmp_path):
    """The file is replaced after indexing: with the picture handed on, the verdict is the
    one of the indexed content (from its picture); without it the pipeline sees other bytes
    and reports the content changed."""
    path = tmp_path / "a.png"
    path.write_bytes(_png(noise_picture((512, 512), seed=21)))
    pictures = PictureHandoff()
    indexed = ingest_file(str(path), pictures=pictures)
    assert indexed.sha256 is not None
    original = Pipeline(tmp_path / "models", ["nsfw-default"], device="cpu",
                        hf_cache=tmp_path / "hf")
    expected = [out for _, out in original.run([Job(1, str(path), sha256=indexed.sha256)])]

    path.write_bytes(_png(noise_picture((512, 512), seed=22)))  # another picture now
    changed = [out for _, out in original.run([Job(2, str(path), sha256=indexed.sha256)])]
    assert isinstance(changed[0], ContentChanged)

    handed = Pipeline(tmp_path / "models", ["nsfw-default"], device="cpu",
                      hf_cache=tmp_path / "hf", pictures=pictures)
    results = [out for _, out in handed.run([Job(3, str(path), sha256=indexed.sha256)])]
    assert len(results) == 1 and not isinstance(results[0], ContentChanged)
    assert results[0].scores == expected[0].scores
    assert pictures.stats.taken == 1


def test_the_indexer_hands_pictures_on_only_from_threads(tmp_path):
    from db.engine import open_library

    engine = open_library(tmp_path / "lib.sqlite3")
    try:
        pictures = PictureHandoff()
        assert LibraryIndexer(engine, None, executor="thread", pictures=pictures).pictures \
            is pictures
        # A process pool's pictures would be pickled back to this process: dearer than a decode.
        assert LibraryIndexer(engine, None, executor="process", pictures=pictures).pictures \
            is None
    finally:
        engine.dispose()


def test_indexing_decodes_for_the_analysis_only_while_it_is_wanted(tmp_path, monkeypatch):
    import library.ingest as ingest_module

    path = tmp_path / "a.jpg"
    path.write_bytes(image_bytes("JPEG", size=(1600, 1200), seed=3))
    asked: list[bool] = []
    real_decode = ingest_module.decode_bytes

    def recording_decode(data, for_analysis=False):
        asked.append(for_analysis)
        return real_decode(data, for_analysis=for_analysis)

    monkeypatch.setattr(ingest_module, "decode_bytes", recording_decode)
    pictures = PictureHandoff()
    pictures.set_wanted(False)  # the analysis is paused
    paused = ingest_file(str(path), pictures=pictures)
    assert paused.ok and asked == [False] and pictures.stats.offered == 0
    assert paused.phash == ingest_file(str(path)).phash  # what indexing records is the same
    pictures.set_wanted(True)
    assert ingest_file(str(path), pictures=pictures).ok
    assert asked == [False, False, True] and pictures.take(paused.sha256) is not None
