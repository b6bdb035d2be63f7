"""Analysis records a verdict only for the picture it looked at: a file overwritten between
indexing and analysis is re-indexed, and its old content keeps no verdict of the new pixels
(a later copy of the old picture is then analysed on its own pixels)."""

from __future__ import annotations

import hashlib
import threading

from sqlalchemy import select

from db.schema import AnalysisResult, Content, Image, QueuedAnalysis
from inference.pipeline import Job, Pipeline
from inference.testing import photo_like
from library.analysis import AnalysisRunner
from library.scan import scan_folders
from library.settings import Settings

NSFW = ["nsfw-default"]


def _score_of(path, models) -> float:
    pipeline = Pipeline(models, analysers=NSFW, device="cpu")
    ((_, out),) = list(pipeline.run([Job(0, str(path))]))
    return out.score


def _result_by_sha(sessions) -> dict[str, float]:
    with sessions() as session:
        return dict(session.execute(
            select(Content.sha256, AnalysisResult.score)
            .join(AnalysisResult, AnalysisResult.content_id == Content.id)).all())


def test_a_file_overwritten_before_analysis_is_reindexed_not_misattributed(tmp_path, library):
    _, sessions, _ = library
    folder, models = tmp_path / "pics", tmp_path / "models"
    folder.mkdir()
    target = folder / "ComfyUI_00001_.png"
    photo_like(160, 120, seed=1).save(target)
    old_bytes = target.read_bytes()
    old_sha = hashlib.sha256(old_bytes).hexdigest()
    scan_folders(sessions, [folder], None, workers=1, executor="thread")

    # The generator overwrites the file before the analysis reaches it.
    photo_like(160, 120, seed=2).save(target)
    new_sha = hashlib.sha256(target.read_bytes()).hexdigest()
    new_score = _score_of(target, models)
    runner = AnalysisRunner(sessions, models, Settings(enabled_analysers=NSFW), device="cpu")
    stats = runner.run(threading.Event())

    results = _result_by_sha(sessions)
    assert old_sha not in results  # no verdict of the new pixels under the old picture
    assert results[new_sha] == new_score
    assert stats.reindexed == 1
    with sessions() as session:
        shown = session.scalar(select(Content.sha256).join(Image, Image.content_id == Content.id)
                               .where(Image.path == str(target)))
        assert shown == new_sha
        assert session.scalar(select(QueuedAnalysis.content_id).limit(1)) is None

    # A copy of the old picture turns up: it is analysed on its own pixels.
    copy = folder / "copy-of-the-old-one.png"
    copy.write_bytes(old_bytes)
    scan_folders(sessions, [folder], None, workers=1, executor="thread")
    AnalysisRunner(sessions, models, Settings(enabled_analysers=NSFW),
                   device="cpu").run(threading.Event())
    results = _result_by_sha(sessions)
    assert results[old_sha] == _score_of(copy, models)
    assert results[old_sha] != new_score


def test_a_file_replaced_by_unreadable_bytes_is_reindexed_as_broken(tmp_path, library):
    _, sessions, _ = library
    folder = tmp_path / "pics"
    folder.mkdir()
    target = folder / "a.png"
    photo_like(64, 64, seed=3).save(target)
    scan_folders(sessions, [folder], None, workers=1, executor="thread")
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + b"half-written" * 10)
    stats = AnalysisRunner(sessions, tmp_path / "models", Settings(enabled_analysers=NSFW),
                           device="cpu").run(threading.Event())
    assert stats.reindexed == 1 and sum(stats.analysed.values()) == 0
    with sessions() as session:
        image = session.scalar(select(Image).where(Image.path == str(target)))
        assert image.status == "broken" and image.content_id is None
        assert session.scalar(select(AnalysisResult.content_id).limit(1)) is None
