"""The style analyser through the real runner: Gram matrices stored beside a versioned
result, never recomputed for unchanged weights, replaced when the weights change."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
from sqlalchemy import delete, select

from db.schema import AnalysisResult, Content, Image, QueuedAnalysis, StyleGram
from db.style_grams import gram_count, grams_of
from inference.style_gram import PACKED_BYTES, unpack
from inference.testing import photo_like, write_style
from library.analysis import AnalysisRunner
from library.settings import Settings

SMALL = 48


def small_style_pipeline(**kwargs):
    """The real Pipeline, with the style analyser's input made small (VGG19 at 512 px costs
    seconds per picture on a CPU; the storage path is the same at any size)."""
    from inference.pipeline import Pipeline

    class SmallInputs(Pipeline):
        def load(self) -> None:
            super().load()
            if "style" in self.ready_analysers:
                self.analyser("style").long_side = SMALL

    return SmallInputs(**kwargs)


def _add_pictures(sessions, folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    with sessions.begin() as s:
        for i in range(count):
            path = folder / f"p{i}.png"
            photo_like(64, 48, seed=40 + i).save(path)
            content = Content(sha256=hashlib.sha256(path.read_bytes()).hexdigest())
            s.add(content)
            s.flush()
            s.add(Image(path=str(path), name=path.name, content_id=content.id))
            ids.append(content.id)
    return ids


def _run(sessions, models):
    runner = AnalysisRunner(sessions, models, Settings(enabled_analysers=["style"]),
                            device="cpu", pipeline_factory=small_style_pipeline)
    stats = runner.run(threading.Event())
    return runner, stats


def test_grams_are_stored_versioned_and_replaced_with_new_weights(tmp_path, library_sessions):
    models = tmp_path / "models"
    write_style(models, seed=0)
    ids = _add_pictures(library_sessions, tmp_path / "pictures", 2)

    runner, stats = _run(library_sessions, models)
    version = runner.versions["style"]
    assert stats.analysed["style"] == 2
    with library_sessions() as s:
        results = s.scalars(select(AnalysisResult).where(AnalysisResult.analyser == "style")).all()
        assert {(r.content_id, r.version, r.error) for r in results} == \
            {(cid, version, None) for cid in ids}
        assert all(r.scores["gram_kib"] == round(PACKED_BYTES / 1024, 1) for r in results)
        stored = dict(grams_of(s, ids, version))
        assert set(stored) == set(ids) and gram_count(s, version) == 2
        first = [unpack(stored[cid]) for cid in ids]
        assert all(len(data) == PACKED_BYTES for data in stored.values())
        assert not s.scalars(select(QueuedAnalysis)).all()
    assert not np.allclose(first[0][0], first[1][0])  # two pictures, two styles

    # Unchanged weights: nothing is queued, nothing recomputed.
    _, stats = _run(library_sessions, models)
    assert stats.analysed["style"] == 0

    # New weights: a new version, every Gram recomputed and replaced.
    write_style(models, seed=1)
    runner, stats = _run(library_sessions, models)
    new_version = runner.versions["style"]
    assert new_version != version and stats.analysed["style"] == 2
    with library_sessions() as s:
        assert gram_count(s, version) == 0 and gram_count(s, new_version) == 2
        assert {r.version for r in s.scalars(select(StyleGram))} == {new_version}
        again = unpack(dict(grams_of(s, ids, new_version))[ids[0]])
    assert not np.allclose(again[0], first[0][0])


def test_grams_go_with_their_content(tmp_path, library_sessions):
    models = tmp_path / "models"
    write_style(models)
    ids = _add_pictures(library_sessions, tmp_path / "pictures", 1)
    _run(library_sessions, models)
    with library_sessions.begin() as s:
        assert gram_count(s) == 1
        s.execute(delete(Image))
        s.execute(delete(Content).where(Content.id == ids[0]))
    with library_sessions() as s:
        assert gram_count(s) == 0  # ON DELETE CASCADE
