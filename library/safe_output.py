"""Text from files (names, prompts, metadata) made safe for where it is written.

File names and prompts are chosen by whoever made the file. Printed raw, an escape sequence
in them retitles the terminal, clears the screen or hides text; in a CSV opened by a
spreadsheet, a cell starting with `=` is a live formula (`=HYPERLINK(…)`). Everything the
command line prints, and every export, goes through one of these functions:

- `terminal_text`: for a human reading a terminal or a log. Control characters (C0 but tab,
  DEL, C1), Unicode bidirectional overrides and line/paragraph separators are shown as
  visible escapes (`\\x1b`, `\\u202e`); bytes that are not UTF-8 as `\\xNN`.
- `json_text`: one JSON document (valid UTF-8; the same characters written as JSON `\\u`
  escapes, so the data is exact and the bytes are terminal-safe).
- `csv_cell`: OWASP's rule for CSV injection — a text cell starting with `=`, `+`, `-`, `@`,
  tab or carriage return gets a leading `'`, so spreadsheets show it as text.

Qt-free; the desktop app escapes for Qt's rich text separately (desktop/safe_text.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from library.paths import storable_text

# Characters that make a terminal do something instead of showing something.
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ACTIVE = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *_BIDI]


def _visible(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TERMINAL_SINGLE_LINE = {code: _visible(code) for code in _ACTIVE if code != 0x09}
_TERMINAL_MULTILINE = {code: text for code, text in _TERMINAL_SINGLE_LINE.items()
                       if code != 0x0A}
# JSON already escapes C0 characters itself; these are the others a terminal would act on.
_JSON = {code: f"\\u{code:04x}" for code in _ACTIVE if code >= 0x7F}

# OWASP "CSV Injection": cells starting with these are formulas in spreadsheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def terminal_text(value: object, *, multiline: bool = False) -> str:
    """`value` as text that a terminal only shows. Newlines are escaped too unless
    `multiline` (a file name with a newline must not fake a second output line)."""
    text = storable_text(str(value))
    return text.translate(_TERMINAL_MULTILINE if multiline else _TERMINAL_SINGLE_LINE)


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


def json_text(value: Any, **dumps_options: Any) -> str:
    """json.dumps (non-ASCII kept as is) whose output is valid UTF-8 and terminal-safe."""
    return json.dumps(_storable(value), ensure_ascii=False, **dumps_options).translate(_JSON)


def csv_cell(value: Any) -> Any:
    """A CSV cell value: text that a spreadsheet would run as a formula gets a leading `'`;
    non-UTF-8 bytes become `\\xNN`. Numbers are left alone (a negative score stays a
    number)."""
    if not isinstance(value, str):
        return value
    value = storable_text(value)
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


class TerminalSafeFormatter(logging.Formatter):
    """A logging formatter whose lines are terminal_text (log messages quote file names)."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_text(super().format(record), multiline=True)
