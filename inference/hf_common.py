"""Helpers for analysers that load transformers checkpoints from a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.weights import WeightsError, check_torch_archive, read_safetensors_header

SAFETENSORS, TORCH_BIN = "model.safetensors", "pytorch_model.bin"


def weights_file(folder: Path) -> Path | None:
    """model.safetensors, else the legacy pytorch_model.bin (read with weights_only=True)."""
    for name in (SAFETENSORS, TORCH_BIN):
        if (folder / name).is_file():
            return folder / name
    return None


def header_or_none(path: Path) -> dict[str, Any] | None:
    """safetensors header (validated), or None for a torch archive (integrity-checked only)."""
    if path.suffix == ".safetensors":
        return read_safetensors_header(path)
    check_torch_archive(path)
    return None


def quiet_transformers() -> None:
    """No per-file progress bars on stderr: the pipeline reports its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def check_loading_info(info: dict[str, Any], path: Path, ignore: tuple[str, ...] = ()) -> None:
    """from_pretrained silently random-initialises missing weights; refuse that."""
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith(ignore or ("\0",))]
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or mismatched:
        detail = f"missing {sorted(missing)[:3]}" if missing else f"wrong shapes {mismatched[:3]}"
        raise WeightsError(f"{path}: checkpoint does not match config.json ({detail})")
