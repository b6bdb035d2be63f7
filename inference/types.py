"""Plain data passed between the pipeline, the analysers and the caller (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Job:
    """One image to analyse. `prompt` (from the image's metadata) feeds CLIPScore.

    `analysers` limits the job to those keys (None: every loaded analyser), so an image whose
    results are current for most analysers is run only through the ones that are not.
    `sha256`: the content the caller will record the results for; when the bytes read from
    `path` hash to something else (the file was replaced since it was indexed), the job gets
    one ContentChanged instead of results.
    """

    job_id: int
    path: str
    prompt: str | None = None
    analysers: frozenset[str] | None = None
    sha256: str | None = None


@dataclass
class AnalyserOutput:
    """One analyser's verdict on one image.

    label/score per analyser: nsfw-default "nsfw"/"sfw" + P(nsfw); coherence argmax label +
    P(label); nsfw-vit argmax label + P(nsfw); safety-checker "nsfw"/"sfw" + the largest
    concept margin; aesthetic None + score ≈1–10; tagger-jtp None + the largest tag probability;
    clip None + None, and `embedding`: its L2-normalised image embedding as float16 bytes
    (stored by db.embeddings beside the result row, in the same transaction).
    """

    analyser: str
    version: str
    label: str | None
    score: float | None
    scores: dict[str, float] = field(default_factory=dict)
    tags: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None  # this image failed in this analyser; the others continue
    # Bulk data beside the result, stored by its own db function in the same transaction
    # (db.queue.write_results): style's packed Gram matrices (db/style_grams.py), clip's fp16
    # embedding (db/embeddings.py); None for every other analyser.
    payload: bytes | None = None

    @classmethod
    def failed(cls, analyser: str, version: str, message: str) -> AnalyserOutput:
        return cls(analyser, version, None, None, {}, [], message)


@dataclass
class DecodeFailure:
    """The image could not be read at all: reported once per job, for every analyser."""

    job: Job
    message: str


@dataclass
class ContentChanged:
    """The file no longer holds the picture the job was for: reported once per job, and no
    analyser ran (its verdict would have been recorded under the wrong picture)."""

    job: Job
    found_sha256: str


@dataclass
class Progress:
    done: int            # images every enabled analyser has finished (or failed) this run
    queued: int          # images taken but not done (plus not yet taken when jobs has len())
    images_per_s: float  # recent completion rate
    device: str
    paused: bool
