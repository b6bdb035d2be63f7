"""The app's one error sink: every error that nothing else handles ends here, is logged with
its traceback, and reaches the status bar.

Sources: `sys.excepthook` (an exception escaping a Qt slot or a virtual method: PySide hands
it to the hook and carries on), `threading.excepthook` (a Python thread that died), and the
workers' failure reports (a scan, a flag recompute or the folder watcher that failed; the
composition root connects their signals to `report`). Modelled on napari's notification
manager: this module is Qt-free and thread-safe; listeners are called on the reporting
thread, and the app's listener (desktop.workers.ErrorBridge) re-emits as a Qt signal, which
Qt queues to the GUI thread when the report came from another one.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

RECENT_KEPT = 20  # reports remembered for the status bar's tooltip


@dataclass(frozen=True)
class ErrorReport:
    message: str  # one line for a person
    details: str  # the traceback, when there was an exception
    thread: str


Listener = Callable[[ErrorReport], None]


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class ErrorSink:
    """Collects error reports from any thread and hands each to its listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.recent: deque[ErrorReport] = deque(maxlen=RECENT_KEPT)
        self._previous_hooks: tuple[Any, Any] | None = None

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def report(self, message: str, exc: BaseException | None = None) -> ErrorReport:
        """Log and announce one error (any thread). With `exc`, its traceback is logged and
        its one-line form is appended to the message."""
        details = ""
        if exc is not None:
            details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            message = f"{message}: {short_error(exc)}" if message else short_error(exc)
        report = ErrorReport(message, details, threading.current_thread().name)
        log.error("%s%s", message, f"\n{details}" if details else "")
        with self._lock:
            self.recent.append(report)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(report)
            except Exception:
                log.exception("an error listener failed")
        return report

    def report_message(self, message: str) -> None:
        """For workers' failure signals, which carry a message and no exception."""
        self.report(message)

    # ---- interpreter hooks ----

    @property
    def installed(self) -> bool:
        return self._previous_hooks is not None

    def install(self) -> None:
        """Route uncaught exceptions (GUI thread and Python threads) here. The hooks found
        are kept and still called unless they are Python's defaults (which would print the
        traceback logged here a second time); a test runner's hook keeps working."""
        if self._previous_hooks is None:
            self._previous_hooks = (sys.excepthook, threading.excepthook)
            sys.excepthook = self._on_uncaught
            threading.excepthook = self._on_thread_uncaught

    def uninstall(self) -> None:
        """Put back the hooks `install` found (only where they are still ours)."""
        if self._previous_hooks is None:
            return
        previous_sys, previous_threading = self._previous_hooks
        self._previous_hooks = None
        if sys.excepthook == self._on_uncaught:
            sys.excepthook = previous_sys
        if threading.excepthook == self._on_thread_uncaught:
            threading.excepthook = previous_threading

    def _on_uncaught(self, kind: type[BaseException], exc: BaseException,
                     tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        self.report("Unexpected error", exc.with_traceback(tb))
        previous = self._previous_hooks[0] if self._previous_hooks else None
        if previous is not None and previous is not sys.__excepthook__:
            previous(kind, exc, tb)

    def _on_thread_uncaught(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "a thread"
        self.report(f"Unexpected error in {name}", args.exc_value)
        previous = self._previous_hooks[1] if self._previous_hooks else None
        if previous is not None and previous is not threading.__excepthook__:
            previous(args)
