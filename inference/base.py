"""The analyser template: one subclass per model family.

Hooks, in the order the pipeline calls them:
  discover (classmethod, cheap, no torch) -> load -> preprocess (prefetch threads, one image)
  -> predict (model thread, one batch) -> outputs.
Heavy libraries are imported inside the hooks so importing a subclass module costs nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from inference.onnx_runtime import parse_device
from inference.types import AnalyserOutput, Job
from inference.weights import (
    BROKEN,
    MISSING,
    READY,
    Found,
    ModelStatus,
    WeightsError,
    hf_snapshots,
)


@dataclass(frozen=True)
class HFSource:
    """An upstream Hugging Face repository (and the subfolder holding our files)."""

    repo_id: str
    subfolder: str = ""
    allow_patterns: tuple[str, ...] = ()  # what `models download` fetches (empty: all)

    @property
    def url(self) -> str:
        tail = f"/tree/main/{self.subfolder}" if self.subfolder else ""
        return f"https://huggingface.co/{self.repo_id}{tail}"


class Analyser(ABC):
    key: ClassVar[str]  # its entry in inference.catalog (title, role, labels)
    revision: ClassVar[int] = 1          # bump when pre/post-processing changes results
    cpu_ms_per_image: ClassVar[float]    # measured on 2 cores; orders analysers cheap-first
    hf_sources: ClassVar[tuple[HFSource, ...]] = ()
    expected_files: ClassVar[tuple[str, ...]] = ()
    how_to_get: ClassVar[str] = ""
    half_precision_ok: ClassVar[bool] = True   # fp16/bf16 on GPUs
    channels_last_ok: ClassVar[bool] = False   # convnets gain from NHWC on GPUs
    # CPU threads the model may use (set by the pipeline before `load`: the cores its prefetch
    # threads leave free); None leaves the library's default.
    cpu_threads: int | None = None

    # ------------------------------------------------------------ discovery (no torch)

    @classmethod
    def candidate_folders(cls, models_dir: Path, hf_cache: Path | None
                          ) -> Iterator[tuple[Path, str]]:
        """(folder, where it came from) in search order: our models dir, then the HF cache."""
        yield Path(models_dir) / cls.key, "models directory"
        for source in cls.hf_sources:
            for snapshot in hf_snapshots(source.repo_id, hf_cache):
                folder = snapshot / source.subfolder if source.subfolder else snapshot
                yield folder, f"Hugging Face cache ({source.repo_id})"

    @classmethod
    def inspect(cls, folder: Path) -> Found | None:
        """Validate one candidate folder from headers only. None: nothing of ours there;
        WeightsError: files there but unusable (the message names file and expectation)."""
        raise NotImplementedError

    @classmethod
    def discover(cls, models_dir: Path, hf_cache: Path | None = None) -> ModelStatus:
        problems: list[tuple[Path, str]] = []
        for folder, origin in cls.candidate_folders(models_dir, hf_cache):
            if not folder.is_dir():
                continue
            try:
                found = cls.inspect(folder)
            except WeightsError as exc:
                problems.append((folder, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - a file no check foresaw: still "broken"
                problems.append((folder, unexpected(folder, exc)))
                continue
            if found is not None:
                message = f"found in {origin}" + (f"; {found.note}" if found.note else "")
                return cls._status(READY, str(found.folder), message, found)
        if problems:
            folder, message = problems[0]
            return cls._status(BROKEN, str(folder), message)
        return cls._status(MISSING, None, f"no weights in {Path(models_dir) / cls.key} or the "
                           "Hugging Face cache")

    @classmethod
    def unexpected_failure(cls, models_dir: Path, exc: Exception) -> ModelStatus:
        """The status of an analyser whose discovery itself failed (a bug or a file no check
        foresaw): broken, with the reason, so the other analysers still run."""
        return cls._status(BROKEN, str(Path(models_dir) / cls.key),
                           unexpected(Path(models_dir) / cls.key, exc))

    @classmethod
    def _status(cls, status: str, path: str | None, message: str,
                found: Found | None = None) -> ModelStatus:
        return ModelStatus(
            key=cls.key, status=status, path=path, message=message,
            expected_files=list(cls.expected_files), how_to_get=cls.how_to_get,
            files={r: str(p) for r, p in found.files.items()} if found else {},
            details=dict(found.details) if found else {})

    @classmethod
    def download_plan(cls) -> list[tuple[HFSource, str]]:
        """(source, folder under <models>/<key>/) for `gentriage models download`."""
        return [(cls.hf_sources[0], "")] if cls.hf_sources else []

    # ------------------------------------------------------------ devices

    @classmethod
    def check_device(cls, requested: str | None) -> None:
        """Raise ValueError (a message for the user) when `requested` is not a device this
        analyser could run on. Cheap: called when a run is planned, before any model loads."""
        parse_device(requested)

    @classmethod
    def choose_device(cls, requested: str | None) -> tuple[str, str | None]:
        """(the concrete device to load on, a note for the user or None) for `requested`
        ("auto", "cpu", "cuda", "cuda:N", "mps"). Each analyser family decides with its own
        runtime: torch for the torch models, onnxruntime's providers for ONNX ones."""
        from inference.device import resolve_device

        return resolve_device(requested), None

    # ------------------------------------------------------------ runtime

    def __init__(self, status: ModelStatus, device: str, *, version: str | None = None,
                 tag_threshold: float = 0.2):
        self.status = status
        self.device = device
        self.version = version or status.version or "unversioned"
        self.tag_threshold = tag_threshold

    @property
    def input_key(self) -> str:
        """Analysers whose inputs share this key get one preprocessed tensor per image."""
        return self.key

    def default_batch_size(self) -> int:
        if self.device == "cpu":
            # Batching buys little on CPU; small batches keep results flowing.
            return 8 if self.cpu_ms_per_image < 500 else 2
        return 32 if self.cpu_ms_per_image < 500 else 8

    def begin_run(self) -> None:  # noqa: B027 - an optional hook: most analysers need none
        """Called at the start of every Pipeline.run (drop per-run caches)."""

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def preprocess(self, image: Any) -> Any:
        """One decoded image (inference.preprocess.DecodedImage) -> model input. Runs in a
        prefetch thread: must not touch the model."""

    @abstractmethod
    def predict(self, inputs: Sequence[Any], jobs: Sequence[Job]) -> list[AnalyserOutput]:
        """One batch through the model. Raise on failure: the pipeline retries smaller
        batches on out-of-memory and isolates the image that fails."""

    def move_to(self, device: str) -> None:
        """Move the loaded model (the pipeline's last resort after GPU out-of-memory)."""
        self.device = device

    def output(self, label: str | None, score: float | None, scores: dict[str, float],
               tags: list[tuple[str, float]] | None = None) -> AnalyserOutput:
        return AnalyserOutput(self.key, self.version, label, score, scores, tags or [])


class TorchAnalyser(Analyser):
    """Common torch plumbing: eval mode, precision, channels_last, device moves."""

    model: Any = None

    @classmethod
    def check_device(cls, requested: str | None) -> None:
        kind, _ = parse_device(requested)
        if kind not in ("auto", "cpu"):  # only an explicit GPU needs torch to be checked
            from inference.device import resolve_device

            resolve_device(requested)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.dtype: Any = None

    def _place(self, module: Any) -> Any:
        import torch

        from inference.device import half_dtype

        half = half_dtype(self.device) if self.half_precision_ok else None
        self.dtype = half or torch.float32
        module = module.to(device=self.device, dtype=self.dtype).eval()
        if self.channels_last_ok and self.device != "cpu":
            module = module.to(memory_format=torch.channels_last)
        return module

    def move_to(self, device: str) -> None:
        super().move_to(device)
        if self.model is not None:
            self.model = self._place(self.model)

    def batch_tensor(self, inputs: Sequence[Any]) -> Any:
        import torch

        batch = torch.stack(list(inputs)).to(self.device, non_blocking=True)
        batch = batch.to(self.dtype or torch.float32)
        if self.channels_last_ok and self.device != "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch


def unexpected(where: Path, exc: BaseException) -> str:
    return (f"{where}: unreadable model files ({type(exc).__name__}: {str(exc)[:300]}); "
            "re-download them")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise WeightsError(message)
