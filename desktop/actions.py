"""One registry of the window's commands: id → text, default shortcuts, handler.

Menus, keyboard shortcuts, the `?` help overlay and the settings dialog's key table all read
the same registry, so a rebinding (stored in the settings file under "shortcuts") changes
every place at once. "Hold" commands (Space to peek) act on key press *and* release, which a
QAction cannot express; they are dispatched by `HoldKeyFilter` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)


@dataclass(frozen=True)
class ActionSpec:
    id: str
    text: str
    shortcuts: tuple[str, ...] = ()
    group: str = "Review"  # the menu and the help overlay section it is listed under
    checkable: bool = False
    hold: bool = False  # handler(pressed: bool) on key press and release


DEFAULT_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("review.accept", "Accept", ("P",)),
    ActionSpec("review.reject", "Reject", ("X",)),
    ActionSpec("review.clear", "Clear decision", ("U",)),
    *(ActionSpec(f"review.rate_{n}", f"Rate {n}" if n else "Clear rating", (str(n),))
      for n in range(6)),
    ActionSpec("review.auto_advance", "Auto-advance after a decision", ("A",),
               checkable=True),
    ActionSpec("edit.undo", "Undo", ("Ctrl+Z",), group="Edit"),
    ActionSpec("edit.redo", "Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), group="Edit"),
    ActionSpec("edit.search", "Search / filter", ("Ctrl+F", "/"), group="Edit"),
    ActionSpec("edit.copy_parameters", "Copy generation parameters", ("Ctrl+Shift+C",),
               group="Edit"),
    ActionSpec("edit.copy_workflow", "Copy ComfyUI workflow", ("Ctrl+Alt+C",), group="Edit"),
    ActionSpec("file.queue_comfyui", "Queue in ComfyUI", (), group="File"),
    ActionSpec("nav.previous", "Previous image", ("Left", "K"), group="Navigate"),
    ActionSpec("nav.next", "Next image", ("Right", "J"), group="Navigate"),
    ActionSpec("nav.next_unreviewed", "Next unreviewed image", ("N",), group="Navigate"),
    ActionSpec("view.full", "Open large preview", ("Return", "Enter"), group="View"),
    ActionSpec("view.back", "Back to the grid", ("Esc",), group="View"),
    ActionSpec("view.peek", "Peek at a blurred image (hold)", ("Space",), group="View",
               hold=True),
    ActionSpec("view.toggle_blur", "Blur off for this session…", ("B",), group="View",
               checkable=True),
    ActionSpec("view.zoom_in", "Larger thumbnails", ("Ctrl++", "Ctrl+="), group="View"),
    ActionSpec("view.zoom_out", "Smaller thumbnails", ("Ctrl+-",), group="View"),
    ActionSpec("view.models", "Models…", ("Ctrl+M",), group="View"),
    ActionSpec("view.find_similar", "Find similar", ("F",), group="View"),
    ActionSpec("help.shortcuts", "Keyboard shortcuts", ("?", "F1"), group="Help"),
    ActionSpec("file.add_folder", "Add folder…", ("Ctrl+O",), group="File"),
    ActionSpec("file.rescan", "Rescan folders", ("F5",), group="File"),
    ActionSpec("file.open_folder", "Open containing folder", ("Ctrl+Shift+O",), group="File"),
    ActionSpec("file.settings", "Settings…", ("Ctrl+,",), group="File"),
    ActionSpec("file.quit", "Quit", ("Ctrl+Q",), group="File"),
    ActionSpec("analysis.pause", "Pause analysis", (), group="File", checkable=True),
    # Families (desktop.families.hooks): stacks, near-duplicates, the compare view.
    ActionSpec("family.accept", "Accept the whole stack", ("Shift+P",)),
    ActionSpec("family.reject", "Reject the whole stack (compare: reject the others)",
               ("Shift+X",)),
    ActionSpec("view.stacks", "Stack view", ("S",), group="View", checkable=True),
    ActionSpec("view.duplicates", "Duplicates", ("D",), group="View"),
    ActionSpec("view.compare", "Compare side by side", ("C",), group="View"),
)

GROUP_ORDER = ("File", "Edit", "Review", "Navigate", "View", "Help")


def _is_text_input(widget: QWidget | None) -> bool:
    if widget is None:
        return False
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox))


class ActionRegistry(QObject):
    """Creates one QAction per spec on `host` (so its shortcuts work anywhere in the
    window), applies user rebindings, and hands out the actions for menus."""

    def __init__(self, host: QWidget, overrides: Mapping[str, Iterable[str]] | None = None,
                 specs: Iterable[ActionSpec] = DEFAULT_ACTIONS) -> None:
        super().__init__(host)
        self._host = host
        self._specs = {spec.id: spec for spec in specs}
        self._overrides = {k: tuple(v) for k, v in (overrides or {}).items()
                           if k in self._specs}
        self._actions: dict[str, QAction] = {}
        self._hold_handlers: dict[str, Callable[[bool], object]] = {}
        # action id -> [(when, handler)]: a view other than the grid (compare, stacks) takes
        # a command for itself while `when()` holds; the newest routing is asked first.
        self._routes: dict[str, list[tuple[Callable[[], bool], Callable[..., object]]]] = {}

    # ---------------------------------------------------------------- building

    def bind(self, action_id: str, handler: Callable[..., object]) -> QAction:
        """Attach the handler; a checkable action's handler gets the checked state, a hold
        action's handler gets True on press and False on release."""
        spec = self._specs[action_id]
        action = self._actions.get(action_id)
        if action is None:
            action = QAction(spec.text, self._host)
            action.setObjectName(action_id)
            action.setCheckable(spec.checkable)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self._host.addAction(action)
            self._actions[action_id] = action
        if spec.hold:
            self._hold_handlers[action_id] = handler
            action.triggered.connect(lambda: None)  # listed in menus, keys via HoldKeyFilter
        elif spec.checkable:
            action.toggled.connect(handler)
        else:
            action.triggered.connect(
                lambda _checked=False: self._run(action_id, handler))
        self._apply_shortcuts(action_id)
        return action

    def _apply_shortcuts(self, action_id: str) -> None:
        action = self._actions[action_id]
        sequences = [QKeySequence(s) for s in self.shortcuts(action_id)]
        if self._specs[action_id].hold:
            # Shown in menus, but not a real shortcut: it would swallow the key release.
            action.setShortcuts([])
            if sequences:
                action.setText(f"{self._specs[action_id].text}\t{sequences[0].toString()}")
        else:
            action.setShortcuts(sequences)

    def route(self, action_id: str, when: Callable[[], bool],
              handler: Callable[..., object]) -> None:
        """While `when()` is true, `action_id` runs `handler` instead of its bound handler
        (a hold action's handler still gets pressed True/False). How a view that shows
        something other than the grid (compare, stacks) takes the review keys for itself
        without a second, ambiguous shortcut."""
        self._routes.setdefault(action_id, []).insert(0, (when, handler))

    def _routed(self, action_id: str) -> Callable[..., object] | None:
        for when, handler in self._routes.get(action_id, ()):
            if when():
                return handler
        return None

    def _run(self, action_id: str, handler: Callable[[], object]) -> None:
        (self._routed(action_id) or handler)()

    # ---------------------------------------------------------------- queries

    def specs(self) -> list[ActionSpec]:
        return list(self._specs.values())

    def action(self, action_id: str) -> QAction:
        return self._actions[action_id]

    def has(self, action_id: str) -> bool:
        return action_id in self._actions

    def shortcuts(self, action_id: str) -> tuple[str, ...]:
        return self._overrides.get(action_id, self._specs[action_id].shortcuts)

    def shortcut_text(self, action_id: str) -> str:
        return ", ".join(QKeySequence(s).toString(QKeySequence.SequenceFormat.NativeText)
                         for s in self.shortcuts(action_id))

    def grouped(self) -> list[tuple[str, list[ActionSpec]]]:
        groups: dict[str, list[ActionSpec]] = {g: [] for g in GROUP_ORDER}
        for spec in self._specs.values():
            groups.setdefault(spec.group, []).append(spec)
        return [(g, specs) for g, specs in groups.items() if specs]

    # ---------------------------------------------------------------- rebinding

    def rebind(self, action_id: str, shortcuts: Iterable[str]) -> None:
        shortcuts = tuple(s for s in shortcuts if s)
        if shortcuts == self._specs[action_id].shortcuts:
            self._overrides.pop(action_id, None)
        else:
            self._overrides[action_id] = shortcuts
        if action_id in self._actions:
            self._apply_shortcuts(action_id)

    def overrides(self) -> dict[str, list[str]]:
        """The rebindings that differ from the defaults (what the settings file keeps)."""
        return {k: list(v) for k, v in self._overrides.items()}

    # ---------------------------------------------------------------- menus

    def fill_menu(self, menu: QMenu, action_ids: Iterable[str | None]) -> None:
        """Add the actions in order; None adds a separator."""
        for action_id in action_ids:
            if action_id is None:
                menu.addSeparator()
            elif action_id in self._actions:
                menu.addAction(self._actions[action_id])

    # ---------------------------------------------------------------- hold keys

    def hold_action_for(self, event: QKeyEvent) -> str | None:
        pressed = QKeySequence(event.keyCombination())
        for action_id in self._hold_handlers:
            for shortcut in self.shortcuts(action_id):
                if QKeySequence(shortcut).matches(pressed) == QKeySequence.SequenceMatch.ExactMatch:
                    return action_id
        return None

    def dispatch_hold(self, action_id: str, pressed: bool) -> None:
        (self._routed(action_id) or self._hold_handlers[action_id])(pressed)


class HoldKeyFilter(QObject):
    """Application-wide key filter for hold actions (Space: peek while held). Ignores keys
    typed into text fields and auto-repeat, so holding Space fires press once, release once.
    Only acts for widgets inside `window`."""

    def __init__(self, registry: ActionRegistry, window: QWidget) -> None:
        super().__init__(window)
        self._registry = registry
        self._window = window
        self._held: str | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        assert isinstance(event, QKeyEvent)
        if event.isAutoRepeat() or not isinstance(watched, QWidget):
            return self._held is not None and self._registry.hold_action_for(event) == self._held
        if watched.window() is not self._window:
            return False
        focus = QApplication.focusWidget()
        if kind == QEvent.Type.KeyPress:
            if _is_text_input(focus) or self._held is not None:
                return False
            action_id = self._registry.hold_action_for(event)
            if action_id is None:
                return False
            self._held = action_id
            self._registry.dispatch_hold(action_id, True)
            return True
        if self._held is not None and self._registry.hold_action_for(event) == self._held:
            action_id, self._held = self._held, None
            self._registry.dispatch_hold(action_id, False)
            return True
        return False
