"""PySide6 6.12.0 aborts Python 3.11 when signals cross threads (hence the pin `<6.12` in
pyproject.toml). This emits 100,000 signals from a plain Python thread to a receiver on the
GUI thread — the path every worker bridge in desktop/workers.py takes — in a subprocess, so a
crash fails this test instead of killing the test run."""

from __future__ import annotations

import os
import subprocess
import sys

SIGNALS = 100_000

SCRIPT = f"""
import os, sys, threading
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

class Emitter(QObject):
    emitted = Signal(int, object)

class Receiver(QObject):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.total = 0

    def _on_emitter_emitted(self, value, payload):
        self.count += 1
        self.total += value + len(payload)
        if self.count == {SIGNALS}:
            app.quit()

app = QCoreApplication(sys.argv)
emitter, receiver = Emitter(), Receiver()  # both live on the GUI thread: emits are queued
emitter.emitted.connect(receiver._on_emitter_emitted)

def pump():
    for i in range({SIGNALS}):
        emitter.emitted.emit(i, [i])

thread = threading.Thread(target=pump)
QTimer.singleShot(0, thread.start)
QTimer.singleShot(120_000, lambda: app.exit(3))  # a hang fails, it does not block CI
app.exec()
thread.join()
print(receiver.count, receiver.total)
sys.exit(0 if receiver.count == {SIGNALS} else 2)
"""


def test_signals_from_a_python_thread_reach_the_gui_thread_without_crashing() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"subprocess died ({proc.returncode}): {proc.stderr[-2000:]}"
    count, total = map(int, proc.stdout.split())
    assert count == SIGNALS
    assert total == sum(range(SIGNALS)) + SIGNALS  # every payload arrived intact
