"""A flag recompute that newly flags the image on screen: the large preview covers it as
soon as that image's chunk is committed, not only when the whole recompute ends."""

from __future__ import annotations

import threading

from fixtures_app import gentriage, image_folder  # noqa: F401 - fixtures
from sqlalchemy import update

from db.engine import session_factory
from db.schema import Content
from desktop.blur import CoverKind


def test_a_chunk_that_flags_the_current_image_covers_the_preview_at_once(qtbot, gentriage):
    app = gentriage
    current = app.window.current_grid_row()
    assert current is not None and not current.flagged
    qtbot.waitUntil(lambda: app.preview.row is not None
                    and app.preview.row.image_id == current.image_id, timeout=5_000)
    assert not app.blur.needs_cover(app.preview.row)

    # What FlagRecomputer does for one chunk: commit, then announce from its own thread.
    # The recompute goes on (no flags_recomputed yet): the rest of the library is pending.
    with session_factory(app.engine)() as session:
        session.execute(update(Content).where(Content.id == current.content_id)
                        .values(flagged=True, flag_nsfw=True))
        session.commit()
    emitter = threading.Thread(target=app.flags.flags_changed.emit,
                               args=([current.content_id],))
    emitter.start()
    emitter.join(5)

    qtbot.waitUntil(lambda: app.model.grid_row(0).flagged, timeout=5_000)
    qtbot.waitUntil(lambda: app.preview.row.flagged, timeout=5_000)
    assert app.blur.needs_cover(app.preview.row)
    assert app.blur.decision(app.preview.row).kind is CoverKind.BLUR
    qtbot.waitUntil(app.preview.has_full_image, timeout=5_000)  # re-rendered blurred
    assert app.preview._rendered_for.kind is CoverKind.BLUR
