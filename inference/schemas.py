"""The structure of every file the weight loaders read, checked before anything uses it.

Model folders come from users (downloads, copies, caches): any of their files may be damaged
or simply a different thing. Reading a field of the wrong type (`config.json` holding `[]`,
`id2label` a list, `hidden_size: "big"`, a safetensors header that is a JSON list or has
string offsets) must end as `broken` with the file and the field named — never as a
traceback that takes the other analysers down with it. So each file is validated here as a
whole against what the loaders (ours and transformers') read from it, with pydantic; the
analysers then only apply their semantic rules (labels, shapes) to well-typed values.

Only the fields a loader reads are described; other keys are left to their owners.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from inference.weights import WeightsError, read_json

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Number = Annotated[float, Field(strict=False, allow_inf_nan=False)]
Model = TypeVar("Model", bound=BaseModel)


class _Open(BaseModel):
    """A JSON object whose other keys belong to someone else (transformers, the hub)."""

    model_config = ConfigDict(extra="allow", strict=True)


# ------------------------------------------------------------------------ safetensors


class TensorEntry(BaseModel):
    """One tensor of a safetensors header (the format's own three fields)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dtype: StrictStr
    shape: list[NonNegativeInt]
    data_offsets: Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)]

    @model_validator(mode="after")
    def _offsets_in_order(self) -> TensorEntry:
        if self.data_offsets[1] < self.data_offsets[0]:
            raise ValueError(f"data_offsets {list(self.data_offsets)} end before they begin")
        return self


_HEADER = TypeAdapter(dict[str, TensorEntry])
_METADATA = TypeAdapter(dict[str, StrictStr])


def safetensors_entries(header: Any, path: Path) -> dict[str, TensorEntry]:
    """The tensors of a parsed safetensors header (its `__metadata__`, if any, is checked to
    be the string map the format defines)."""
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is {_kind(header)}, not a JSON "
                           "object (damaged or not a safetensors file)")
    header = dict(header)
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        _validate(_METADATA, metadata, path, "safetensors header __metadata__")
    return _validate(_HEADER, header, path, "safetensors header")


# ------------------------------------------------------------------------ transformers configs


class VitConfig(_Open):
    """config.json of a ViTForImageClassification (Falconsai/nsfw_image_detection)."""

    model_type: StrictStr
    id2label: dict[str, StrictStr]
    hidden_size: PositiveInt = 768
    num_hidden_layers: PositiveInt = 12
    num_attention_heads: PositiveInt = 12
    intermediate_size: PositiveInt = 3072
    image_size: PositiveInt = 224
    patch_size: PositiveInt = 16
    num_channels: PositiveInt = 3

    @field_validator("id2label")
    @classmethod
    def _integer_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not k.strip().lstrip("-").isdigit()]
        if bad:
            raise ValueError(f"keys must be class indices, found {bad[0]!r}")
        return value

    def labels(self) -> dict[int, str]:
        return {int(i): name for i, name in self.id2label.items()}


class ClipTowerConfig(_Open):
    hidden_size: PositiveInt | None = None
    intermediate_size: PositiveInt | None = None
    num_hidden_layers: PositiveInt | None = None
    num_attention_heads: PositiveInt | None = None
    image_size: PositiveInt | None = None
    patch_size: PositiveInt | None = None
    num_channels: PositiveInt | None = None
    max_position_embeddings: PositiveInt | None = None
    vocab_size: PositiveInt | None = None


class ClipConfig(_Open):
    """config.json of a CLIPModel (openai/clip-vit-large-patch14) or the CompVis safety
    checker (a CLIPConfig too)."""

    model_type: StrictStr
    projection_dim: PositiveInt = 512
    vision_config: ClipTowerConfig | None = None
    text_config: ClipTowerConfig | None = None


# ------------------------------------------------------------------------ preprocessor configs


class SizeSpec(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    height: PositiveInt | None = None
    width: PositiveInt | None = None
    shortest_edge: PositiveInt | None = None


Triple = Annotated[list[Number], Field(min_length=3, max_length=3)]


class PreprocessorConfig(_Open):
    """preprocessor_config.json of a ViT or CLIP image processor (the fields the recipes in
    inference.preprocess read)."""

    size: PositiveInt | SizeSpec | None = None
    crop_size: PositiveInt | SizeSpec | None = None
    resample: Literal[0, 1, 2, 3, 4, 5] | None = None
    image_mean: Triple | None = None
    image_std: Triple | None = None
    do_normalize: StrictBool | None = None
    do_resize: StrictBool | None = None
    do_center_crop: StrictBool | None = None
    do_rescale: StrictBool | None = None
    rescale_factor: Number | None = None

    @field_validator("image_std")
    @classmethod
    def _no_zero_std(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(v == 0 for v in value):
            raise ValueError("a standard deviation of 0 would divide by zero")
        return value

    def recipe_fields(self) -> dict[str, Any]:
        """The fields present in the file, as plain JSON values (what the recipes read)."""
        return self.model_dump(exclude_none=True, include=set(type(self).model_fields))


# ------------------------------------------------------------------------ small files


def read_json_as(path: Path, what: str, schema: type[Model]) -> Model:
    """Read `path` as JSON and check it against `schema`; WeightsError naming the file and the
    first offending field otherwise."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: {what} is {_kind(data)}, expected a JSON object")
    return _validate(TypeAdapter(schema), data, path, what)


def _validate(adapter: TypeAdapter[Any], data: Any, path: Path, what: str) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise WeightsError(f"{path}: {what}: {describe(exc)}") from None
    except RecursionError:
        raise WeightsError(f"{path}: {what} is nested too deeply") from None


def describe(exc: ValidationError) -> str:
    """The first problem of a pydantic error, in one line: `field.sub: what is wrong`."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).replace("Value error, ", "")
    problem = f"{where}: {message}" if where else message
    if exc.error_count() > 1:
        problem += f" (and {exc.error_count() - 1} more problem(s))"
    return problem


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
