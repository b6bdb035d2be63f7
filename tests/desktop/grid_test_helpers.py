"""Pixel and waiting helpers for the desktop tests (imported by name: pytest puts this
folder on sys.path)."""

import numpy as np
from PIL import Image as PILImage
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage


def checkerboard(size: int = 256, square: int = 4, seed: int = 0) -> PILImage.Image:
    """High-frequency black/white squares (a tint from `seed` so sources differ)."""
    ys, xs = np.mgrid[0:size, 0:size]
    board = (((xs // square) + (ys // square)) % 2).astype(np.uint8) * 255
    rgb = np.stack([board, board, np.full_like(board, (seed * 37) % 256) | board], axis=-1)
    return PILImage.fromarray(rgb, "RGB")


def noise(size: int = 256, seed: int = 1) -> PILImage.Image:
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


def qimage_array(image: QImage) -> np.ndarray:
    """Grey levels of a QImage as a 2-D float array."""
    grey = image.convertToFormat(QImage.Format.Format_Grayscale8)
    width, height, stride = grey.width(), grey.height(), grey.bytesPerLine()
    data = np.frombuffer(grey.constBits(), dtype=np.uint8, count=stride * height)
    return data.reshape(height, stride)[:, :width].astype(np.float32)


def high_frequency(image: QImage) -> float:
    """Mean absolute difference between neighbouring pixels (0 = flat; a fine checkerboard
    scores tens)."""
    a = qimage_array(image)
    if a.shape[0] < 2 or a.shape[1] < 2:
        return 0.0
    return float((np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=0)).mean()) / 2)


def wait_for_thumbnails(qtbot, model, rows, timeout=10_000):
    """Ask for the rows' thumbnails and wait until the model has them all."""
    def ready():
        return all(isinstance(model.index(r).data(Qt.ItemDataRole.DecorationRole), QImage)
                   for r in rows)

    qtbot.waitUntil(ready, timeout=timeout)
