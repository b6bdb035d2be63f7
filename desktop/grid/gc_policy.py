"""Keep Python's full garbage collections off the scrolling path.

Measured (benchmarks/bench_scroll.py, 100k images, 2-core machine): the longest GUI stalls
while scrolling were generation-2 collections — 70-140 ms each, triggered at a random
allocation (a page read, a paint) — because a full collection walks every object the
process tracks, and after start-up that is some 100,000 module-level objects of PySide6,
SQLAlchemy, Pillow and numpy that will never be garbage. `gc.freeze()` moves them to the
permanent generation, which collections skip; what remains for a full pass is what the
running app creates (grid rows, cached images: tens of thousands at most), a few ms.

Call `settle_after_startup()` once the window is built and the first page is shown (the
composition root does it), not earlier: objects created before the freeze are never
collected, so freezing in the middle of start-up would keep its temporary garbage.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def settle_after_startup() -> int:
    """Collect start-up garbage, then freeze every surviving object out of future
    collections. Returns how many objects are now frozen. Safe to call more than once
    (later calls freeze what was added since)."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("gc: %d start-up objects frozen out of collections", frozen)
    return frozen
