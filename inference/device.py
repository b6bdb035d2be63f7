"""Torch device choice, precision and out-of-memory recognition.

Only torch analysers call `resolve_device`/`half_dtype` (which import torch); ONNX analysers
choose onnxruntime providers instead (inference.onnx_runtime). `is_out_of_memory` and
`release_memory` never import torch themselves: when torch was never imported, no torch
allocation can have failed, and the default path stays torch-free.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from inference.onnx_runtime import parse_device


def resolve_device(requested: str | None = "auto") -> str:
    """"auto" -> cuda, then mps, then cpu. An explicit device that is not there raises
    ValueError with a message the CLI can print."""
    kind, index = parse_device(requested)
    if kind == "cpu":
        return "cpu"
    import torch

    if kind == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        if index is not None:
            if index >= torch.cuda.device_count():
                raise ValueError(f"device {requested!r}: only {torch.cuda.device_count()} "
                                 "CUDA device(s)")
            return f"cuda:{index}"
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available")
    return "mps"


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
    """A device allocation failed (torch's OutOfMemoryError, or any runtime's "out of
    memory" message, such as onnxruntime's CUDA provider)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True  # also torch.cuda.OutOfMemoryError
    return isinstance(exc, Exception) and "out of memory" in str(exc).lower()


def release_memory(device: str) -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
