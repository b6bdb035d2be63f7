"""Device choice, precision and out-of-memory recognition. torch is imported lazily."""

from __future__ import annotations

from typing import Any


def resolve_device(requested: str | None = "auto") -> str:
    """"auto" -> cuda, then mps, then cpu. An explicit device that is not there raises
    ValueError with a message the CLI can print."""
    import torch

    want = (requested or "auto").strip().lower()
    if want == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if want == "cpu":
        return "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        if ":" in want:
            index = int(want.split(":", 1)[1])
            if index >= torch.cuda.device_count():
                raise ValueError(f"device {requested!r}: only {torch.cuda.device_count()} "
                                 "CUDA device(s)")
        return want
    if want == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' requested but MPS is not available")
        return "mps"
    raise ValueError(f"unknown device {requested!r} (auto, cpu, cuda, cuda:N, mps)")


def half_dtype(device: str) -> Any:
    """The reduced precision a GPU runs well: bf16 where supported (no overflow), else fp16;
    None on CPU (fp16 matmuls are slow there and bf16 gains little on 2 cores)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):  # also torch.cuda.OutOfMemoryError
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
