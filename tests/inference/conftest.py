"""Shared fixtures: one full set of tiny upstream-layout models and one loaded pipeline per
session (building and loading cost seconds; every test that only reads them shares them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.testing import photo_like, write_all


@pytest.fixture(autouse=True)
def _no_hf_cache(tmp_path_factory, monkeypatch):
    # Never let the user's real Hugging Face cache leak into discovery results.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))


@pytest.fixture(scope="session")
def all_models(tmp_path_factory) -> Path:
    return write_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    photo_like(320, 256, seed=1).save(folder / "a.png")
    photo_like(256, 384, seed=2).save(folder / "b.jpg", quality=92)
    photo_like(300, 200, seed=3, mode="RGBA").save(folder / "c_alpha.png")
    photo_like(200, 200, seed=4, mode="L").save(folder / "d_grey.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return folder


@pytest.fixture(scope="session")
def good_images(image_dir) -> list[Path]:
    return sorted(p for p in image_dir.iterdir() if p.name != "broken.png")


@pytest.fixture(scope="session")
def full_pipeline(all_models):
    from inference.pipeline import Pipeline

    pipeline = Pipeline(all_models, device="cpu", hf_cache=all_models / "no-hf-cache")
    pipeline.load()
    return pipeline


@pytest.fixture(scope="session")
def full_results(full_pipeline, good_images):
    """{(job_id, analyser): AnalyserOutput} for the good images, with a prompt on job 1."""
    from inference.pipeline import Job

    jobs = [Job(i, str(p), prompt="a red car on a road" if i == 1 else None)
            for i, p in enumerate(good_images)]
    return {(job.job_id, out.analyser): out for job, out in full_pipeline.run(jobs)}
