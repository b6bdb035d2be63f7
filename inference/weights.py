"""Finding, validating and fingerprinting model weights — cheaply, without torch.

Each analyser looks in two kinds of place, in this order:
1. `<models_dir>/<key>/` holding the upstream repository's files unchanged;
2. the user's Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
   `~/.cache/huggingface/hub`), `models--org--name/snapshots/<rev>/`, read offline.

Validation reads only safetensors headers (8 bytes + a JSON header) and zip central
directories (torch's `.bin`/`.pth` format), so `gentriage models` stays instant and never
imports torch. The weights checksum (sha256 over the weight and config files) becomes the
analyser's *version*: results computed with other weights are re-done, results with the same
weights never are. Checksums are cached by (path, size, mtime_ns).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY, MISSING, BROKEN = "ready", "missing", "broken"

# safetensors dtype name -> bytes per element (only what checkpoints use).
_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


class WeightsError(Exception):
    """Files are present but unusable; the message names the file and what was expected."""


@dataclass
class ModelStatus:
    key: str
    status: str  # READY | MISSING | BROKEN
    path: str | None
    message: str
    expected_files: list[str]
    how_to_get: str
    version: str | None = None
    # Role -> file used by the loader (e.g. {"weights": ".../model.safetensors"}).
    files: dict[str, str] = field(default_factory=dict)
    # Facts read from headers that the loader needs (variant, class count, prefix, …).
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "status": self.status, "path": self.path,
                "message": self.message, "expected_files": list(self.expected_files),
                "how_to_get": self.how_to_get, "version": self.version,
                "files": dict(self.files)}


@dataclass
class Found:
    """What an analyser's `inspect` returns for a usable candidate folder."""

    folder: Path
    files: dict[str, Path]
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""


# ---------------------------------------------------------------- headers


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor names -> dtype/shape from a safetensors header; raises WeightsError when the
    file is not safetensors or is shorter than its header says (a truncated download)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fp:
            head = fp.read(8)
            if len(head) < 8:
                raise WeightsError(f"{path}: {size} bytes, too short to be a safetensors file "
                                   "(empty or truncated download)")
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                raise WeightsError(f"{path}: not a safetensors file or truncated (header "
                                   f"claims {n} bytes, file has {size})")
            raw = fp.read(n)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(f"{path}: unreadable safetensors header ({exc})") from exc
    from inference.schemas import safetensors_entries  # pydantic: only when there are weights

    tensors: dict[str, TensorInfo] = {}
    data_end = 0
    for name, entry in safetensors_entries(header, path).items():
        begin, end = entry.data_offsets
        item = _DTYPE_SIZES.get(entry.dtype)
        count = 1
        for dim in entry.shape:
            count *= dim
        if item is not None and end - begin != count * item:
            raise WeightsError(f"{path}: tensor {name!r} has {end - begin} bytes, its shape "
                               f"{list(entry.shape)} needs {count * item}")
        data_end = max(data_end, end)
        tensors[name] = TensorInfo(entry.dtype, tuple(entry.shape))
    if 8 + n + data_end > size:
        raise WeightsError(f"{path}: truncated: expected at least {8 + n + data_end} bytes, "
                           f"found {size} (re-download the file)")
    return tensors


def check_torch_archive(path: Path) -> None:
    """Cheap integrity check of a torch.save file (`.bin`/`.pth`) without unpickling it.

    Current torch writes a zip whose central directory sits at the end, so a truncated
    download fails to open. The legacy (pre-1.6) format is a bare pickle: only its magic is
    checked; the loader (torch.load(weights_only=True)) finds the rest."""
    import zipfile  # only when a torch checkpoint is there

    path = Path(path)
    try:
        size = path.stat().st_size
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if not any(name.endswith("data.pkl") for name in names):
                    raise WeightsError(f"{path}: zip file without data.pkl — not a torch "
                                       "checkpoint")
                for info in zf.infolist():
                    if info.header_offset + info.compress_size > size:
                        raise WeightsError(f"{path}: truncated (entry {info.filename} runs "
                                           "past the end of the file)")
            return
        with path.open("rb") as fp:
            magic = fp.read(2)
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{path}: damaged or truncated torch checkpoint ({exc})") from exc
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(magic) < 2 or magic[0] != 0x80:
        raise WeightsError(f"{path}: {size} bytes, neither a torch zip checkpoint nor a "
                           "pickle (truncated or wrong file)")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsError(f"{path}: {what} is not valid JSON ({str(exc)[:200]})") from exc


def expect_shape(tensors: dict[str, TensorInfo], name: str, shape: Sequence[int | None],
                 file: Path) -> tuple[int, ...]:
    """Check one tensor's shape (None = any size); returns the actual shape."""
    info = tensors.get(name)
    if info is None:
        raise WeightsError(f"{file}: missing tensor {name!r} — not the expected checkpoint")
    if len(info.shape) != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, info.shape)):
        want_text = "x".join("?" if d is None else str(d) for d in shape)
        raise WeightsError(f"{file}: tensor {name!r} has shape {list(info.shape)}, expected "
                           f"{want_text}")
    return info.shape


# ---------------------------------------------------------------- checksums


class ChecksumCache:
    """sha256 per file, remembered by (absolute path, size, mtime_ns).

    Persisted as JSON (by default `<models_dir>/.checksums.json`) so a 1 GB checkpoint is
    hashed once, not at every start. A read-only location just keeps the cache in memory."""

    _memory: dict[str, tuple[int, int, str]] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path | None):
        self.path = path
        self._loaded = False

    def _load(self) -> None:
        if self._loaded or self.path is None:
            return
        self._loaded = True
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            for name, (size, mtime, digest) in data.items():
                self._memory.setdefault(str(name), (int(size), int(mtime), str(digest)))
        except Exception:  # noqa: BLE001 - a damaged cache is only a cache: hash again
            pass

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: list(v) for k, v in self._memory.items()}),
                           encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass

    def sha256(self, file: Path) -> str:
        file = Path(file).resolve()
        st = file.stat()
        with self._lock:
            self._load()
            hit = self._memory.get(str(file))
            if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                return hit[2]
        h = hashlib.sha256()
        with file.open("rb") as fp:
            for chunk in iter(lambda: fp.read(1 << 22), b""):
                h.update(chunk)
        digest = h.hexdigest()
        with self._lock:
            self._memory[str(file)] = (st.st_size, st.st_mtime_ns, digest)
            self._save()
        return digest


def version_of(files: dict[str, Path], revision: int, cache: ChecksumCache) -> str:
    """`<revision>-<16 hex>`: the analyser code revision (bumped when pre/post-processing
    changes results) and a digest over every file the results depend on."""
    h = hashlib.sha256()
    for role in sorted(files):
        h.update(role.encode())
        h.update(cache.sha256(files[role]).encode())
    return f"{revision}-{h.hexdigest()[:16]}"


# ---------------------------------------------------------------- Hugging Face cache


def hf_hub_cache() -> Path:
    if env := os.environ.get("HF_HUB_CACHE"):
        return Path(env).expanduser()
    if env := os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env).expanduser()
    if env := os.environ.get("HF_HOME"):
        return Path(env).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hf_snapshots(repo_id: str, cache: Path | None = None) -> Iterator[Path]:
    """Snapshot folders of `repo_id` in the HF cache: the one `refs/main` points at first,
    then the others, newest first. Nothing is downloaded."""
    root = (cache or hf_hub_cache()) / ("models--" + repo_id.replace("/", "--"))
    snapshots = root / "snapshots"
    if not snapshots.is_dir():
        return
    seen: set[Path] = set()
    try:
        ref = (root / "refs" / "main").read_text(encoding="utf-8").strip()
        main = snapshots / ref if ref and "/" not in ref else None
        if main is not None and main.is_dir():
            seen.add(main)
            yield main
    except (OSError, ValueError):  # unreadable, or not text: look at every snapshot instead
        pass
    try:
        others = sorted((p for p in snapshots.iterdir() if p.is_dir() and p not in seen),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    yield from others


# ---------------------------------------------------------------- discovery


def default_checksum_cache(models_dir: Path) -> ChecksumCache:
    return ChecksumCache(Path(models_dir) / ".checksums.json")


def discover(models_dir: Path, keys: Iterable[str] | None = None, *,
             hf_cache: Path | None = None, with_versions: bool = True) -> list[ModelStatus]:
    """Status of each analyser (all, in cost order, unless `keys`): cheap, imports no torch.

    `with_versions=False` skips hashing (the first hash of a large checkpoint reads it once)."""
    from inference.registry import ANALYSER_KEYS, analyser_class

    models_dir = Path(models_dir)
    cache = default_checksum_cache(models_dir) if with_versions else None
    wanted = list(ANALYSER_KEYS if keys is None else keys)
    statuses = []
    for key in wanted:
        cls = analyser_class(key)
        try:
            status = cls.discover(models_dir, hf_cache)
        except Exception as exc:  # noqa: BLE001 - one analyser's files never stop the others
            status = cls.unexpected_failure(models_dir, exc)
        if status.status == READY and cache is not None:
            try:
                status.version = version_of({r: Path(p) for r, p in status.files.items()},
                                            cls.revision, cache)
            except OSError as exc:
                status.status = BROKEN
                status.message = f"cannot read weights for checksum: {exc}"
        statuses.append(status)
    return statuses
