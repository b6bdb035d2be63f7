"""Helpers for analysers that load transformers checkpoints from a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from inference.base import require
from inference.weights import WeightsError, check_torch_archive, read_safetensors_header

if TYPE_CHECKING:
    from pydantic import BaseModel

Model = TypeVar("Model", bound="BaseModel")

SAFETENSORS, TORCH_BIN = "model.safetensors", "pytorch_model.bin"


def weights_file(folder: Path) -> Path | None:
    """model.safetensors, else the legacy pytorch_model.bin (read with weights_only=True)."""
    for name in (SAFETENSORS, TORCH_BIN):
        if (folder / name).is_file():
            return folder / name
    return None


def config_and_weights(folder: Path, missing_weights_name: str, schema: type[Model]
                       ) -> tuple[Path, Model, Path] | None:
    """(config.json path, its content checked against `schema`, weights file) of a
    transformers folder, None when the folder holds neither, WeightsError when it holds only
    one of them or the config is not what `schema` describes."""
    from inference.schemas import read_json_as

    weights = weights_file(folder)
    config_path = folder / "config.json"
    if weights is None and not config_path.is_file():
        return None
    require(config_path.is_file(), f"{config_path}: missing (needed beside {weights})")
    require(weights is not None, f"{folder / missing_weights_name}: missing (config.json is "
            "there but no weights)")
    assert weights is not None
    return config_path, read_json_as(config_path, "config.json", schema), weights


def found_files(folder: Path, config_path: Path, weights: Path) -> dict[str, Path]:
    """The files a version checksum covers: weights, config and, if present, preprocessor
    (checked here, at discovery, so a damaged one is reported before anything loads)."""
    files = {"weights": weights, "config": config_path}
    if (folder / "preprocessor_config.json").is_file():
        files["preprocessor"] = folder / "preprocessor_config.json"
        read_preprocessor(files["preprocessor"])
    return files


def read_preprocessor(path: Path | str | None) -> dict[str, Any]:
    """The recipe fields of a preprocessor_config.json, checked; {} when there is none."""
    if not path:
        return {}
    from inference.schemas import PreprocessorConfig, read_json_as

    return read_json_as(Path(path), "preprocessor_config.json",
                        PreprocessorConfig).recipe_fields()


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
