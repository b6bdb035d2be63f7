"""Custom item-data roles shared by every GenTriage item model and view (one IntEnum, so a
role number means the same thing in the grid, the details pane and the tests)."""

from __future__ import annotations

from enum import IntEnum

from PySide6.QtCore import Qt

_BASE = int(Qt.ItemDataRole.UserRole) + 1


class Role(IntEnum):
    ImageId = _BASE
    ContentId = _BASE + 1
    Path = _BASE + 2
    Sha256 = _BASE + 3
    Decision = _BASE + 4
    Rating = _BASE + 5
    Flagged = _BASE + 6
    FlagNsfw = _BASE + 7
    FlagIncoherent = _BASE + 8
    Analysed = _BASE + 9
    Status = _BASE + 10
    Error = _BASE + 11
    NeedsBlur = _BASE + 12  # bool: the image is painted blurred or covered right now
    Row = _BASE + 13  # the whole GridRow (db.queries), or None while not loaded
    ThumbnailError = _BASE + 14  # str | None: why the thumbnail could not be made
    PendingDecision = _BASE + 15  # str | None: a decision queued, not yet written
    # The Models view's report table (desktop/models_view.py):
    SortValue = _BASE + 16  # the cell's raw value (None: unknown), what sorting compares
    Group = _BASE + 17  # str | None: the row's group (None: the unknown group)
    # Families (desktop.families, desktop.compare)
    FamilyCount = _BASE + 18  # int: pictures in the stack / duplicate group a cell stands for
    FamilyKey = _BASE + 19  # the stack key or duplicate group id of a cell
    Differs = _BASE + 20  # bool: a compare-table row whose values are not all the same
