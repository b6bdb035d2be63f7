"""The `style` analyser's Gram matrices: layers, the stored form, and the style loss.

numpy only (no torch), so the report (library/report.py) reads stored Grams and computes
style losses without importing the model code; numpy itself is imported when a function runs
(the analyser registry imports this module, and an unchanged rescan should not pay for it).

Gram matrix of a layer (Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016): F = the layer's ReLU feature maps as an N x M matrix (N
channels, M = height x width positions); G = F Fᵀ / M. Dividing by M makes G independent of
the image size, so pictures of any size compare; the paper's per-layer loss
E_l = 1/(4 N² M²) Σ (G_unnormalised - A_unnormalised)² is then E_l = 1/(4 N²) Σ (G - A)².
The style loss is L = Σ_l w_l E_l over conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 with the
paper's weights w_l = 1/5 ("w_l = 1/5 in those layers, w_l = 0 in all other layers").

Stored form (`pack` / `unpack`), per picture: G is symmetric, so only its upper triangle
(diagonal included, row-major) is kept, in float16 after dividing each layer by its largest
absolute value (a float32 scale per layer), which keeps every value in fp16's normal range
whatever the weights produce. 64+128+256+512+512 channels give 305,888 values:
611,800 bytes (597.5 KiB) per picture.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAGIC = b"GTG1"


@dataclass(frozen=True)
class StyleLayer:
    name: str
    relu_index: int  # torchvision vgg19().features index of the ReLU after the conv
    channels: int


# conv1_1 .. conv5_1 = torchvision features.0, 5, 10, 19, 28; their ReLUs follow at +1.
LAYERS: tuple[StyleLayer, ...] = (
    StyleLayer("conv1_1", 1, 64), StyleLayer("conv2_1", 6, 128), StyleLayer("conv3_1", 11, 256),
    StyleLayer("conv4_1", 20, 512), StyleLayer("conv5_1", 29, 512))
GATYS_WEIGHTS: tuple[float, ...] = (0.2, 0.2, 0.2, 0.2, 0.2)


def triangle_size(channels: int) -> int:
    return channels * (channels + 1) // 2


TRIANGLE_SIZES = tuple(triangle_size(layer.channels) for layer in LAYERS)
_HEADER = struct.Struct("<4s" + "f" * len(LAYERS))
PACKED_BYTES = _HEADER.size + 2 * sum(TRIANGLE_SIZES)


class GramFormatError(ValueError):
    """Stored bytes that are not a packed Gram set of this version."""


@functools.cache
def upper_indices(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the upper triangle, in the stored order."""
    import numpy as np
    return np.triu_indices(channels)


@functools.cache
def _diagonal_positions(channels: int) -> np.ndarray:
    import numpy as np
    rows, cols = upper_indices(channels)
    return np.flatnonzero(rows == cols)


def pack(triangles: Sequence[np.ndarray]) -> bytes:
    """Upper triangles (one 1-D array per layer, in LAYERS order) -> the stored bytes."""
    import numpy as np
    if len(triangles) != len(LAYERS):
        raise GramFormatError(f"expected {len(LAYERS)} layers, got {len(triangles)}")
    scales: list[float] = []
    parts: list[bytes] = []
    for triangle, size in zip(triangles, TRIANGLE_SIZES):
        values = np.asarray(triangle, dtype=np.float32).reshape(-1)
        if values.size != size:
            raise GramFormatError(f"a layer triangle has {values.size} values, expected {size}")
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        scale = peak if peak > 0 and np.isfinite(peak) else 1.0
        scales.append(scale)
        parts.append((values / scale).astype("<f2").tobytes())
    return _HEADER.pack(MAGIC, *scales) + b"".join(parts)


def unpack(data: bytes) -> list[np.ndarray]:
    """The stored bytes -> float32 upper triangles, one per layer."""
    import numpy as np
    if len(data) != PACKED_BYTES or data[:4] != MAGIC:
        raise GramFormatError(f"not a packed Gram set ({len(data)} bytes, expected "
                              f"{PACKED_BYTES} starting with {MAGIC!r})")
    _, *scales = _HEADER.unpack_from(data)
    out: list[np.ndarray] = []
    offset = _HEADER.size
    for scale, size in zip(scales, TRIANGLE_SIZES):
        half = np.frombuffer(data, dtype="<f2", count=size, offset=offset)
        out.append(half.astype(np.float32) * np.float32(scale))
        offset += 2 * size
    return out


def full_matrix(triangle: np.ndarray, channels: int) -> np.ndarray:
    """The symmetric N x N matrix back from its upper triangle (for inspection and tests)."""
    import numpy as np
    rows, cols = upper_indices(channels)
    matrix = np.zeros((channels, channels), dtype=np.float64)
    matrix[rows, cols] = triangle
    matrix[cols, rows] = triangle
    return matrix


def layer_losses(grams: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> list[float]:
    """E_l = 1/(4 N²) Σ_ij (G_ij - A_ij)² per layer, from upper triangles: every
    off-diagonal entry stands for two entries of the full matrix."""
    import numpy as np
    losses = []
    for layer, g, a in zip(LAYERS, grams, reference):
        diff = np.asarray(g, dtype=np.float64) - np.asarray(a, dtype=np.float64)
        squares = diff * diff
        total = 2.0 * squares.sum() - squares[_diagonal_positions(layer.channels)].sum()
        losses.append(float(total / (4.0 * layer.channels ** 2)))
    return losses


def style_loss(grams: Sequence[np.ndarray], reference: Sequence[np.ndarray],
               weights: Sequence[float] = GATYS_WEIGHTS) -> float:
    """L = Σ_l w_l E_l (Gatys et al. 2016, w_l = 1/5)."""
    return float(sum(w * e for w, e in zip(weights, layer_losses(grams, reference))))


class GramMean:
    """Running mean of Gram sets (the reference style: the mean Gram matrices of several
    pictures), accumulated in float64."""

    def __init__(self) -> None:
        import numpy as np
        self.count = 0
        self._sums = [np.zeros(size, dtype=np.float64) for size in TRIANGLE_SIZES]

    def add(self, grams: Sequence[np.ndarray]) -> None:
        for total, g in zip(self._sums, grams):
            total += g
        self.count += 1

    def mean(self) -> list[np.ndarray]:
        if not self.count:
            raise ValueError("no Gram matrices to average")
        return [total / self.count for total in self._sums]
