"""Text from the file system shown in widgets that would otherwise guess "rich text".

Qt renders a QLabel, tooltip or message box string as HTML when it *looks* like HTML
(Qt.mightBeRichText). A folder or file named `<img src=photo.png>` would then make Qt load
and paint that picture — unblurred, bypassing BlurPolicy. Every string that carries a path,
a file name or metadata goes through here: escaped inside an explicit rich-text wrapper, so
it always shows as the literal characters.
"""

from __future__ import annotations

import html


def escaped_rich_text(text: str) -> str:
    """`text` as rich text that displays literally (line breaks kept)."""
    return "<qt>" + "<br>".join(html.escape(line) for line in text.split("\n")) + "</qt>"
