"""ANSI colours in command output, as HTML for the dashboard.

SGR sequences (``ESC [ ... m``) become ``<span class="ansi-...">``: the 16 colours,
foreground and background, bold, dim, italic and underline. Other escape sequences
(cursor moves, window titles) are dropped; 256-colour and true-colour choices are
skipped, their text kept plain. Everything else is escaped: output is never markup.
Classes, not ``style`` attributes: the dashboard's CSP allows no inline styles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from markupsafe import Markup, escape

# SGR, then any other CSI sequence, then OSC (ended by BEL or ST), then a lone ESC pair.
_ESCAPE = re.compile(
    r"\x1b\[([0-9;:]*)m|\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?"
)


@dataclass(frozen=True)
class _Style:
    fg: int | None = None  # 0-15
    bg: int | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False

    def classes(self) -> str:
        names = []
        if self.fg is not None:
            names.append(f"ansi-fg{self.fg}")
        if self.bg is not None:
            names.append(f"ansi-bg{self.bg}")
        for flag in ("bold", "dim", "italic", "underline"):
            if getattr(self, flag):
                names.append(f"ansi-{flag}")
        return " ".join(names)


_FLAGS_ON = {1: "bold", 2: "dim", 3: "italic", 4: "underline"}
_FLAGS_OFF = {22: ("bold", "dim"), 23: ("italic",), 24: ("underline",)}


def _apply(style: _Style, params: str) -> _Style:
    codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        i += 1
        if code == 0:
            style = _Style()
        elif code in _FLAGS_ON:
            style = replace(style, **{_FLAGS_ON[code]: True})
        elif code in _FLAGS_OFF:
            style = replace(style, **dict.fromkeys(_FLAGS_OFF[code], False))
        elif 30 <= code <= 37 or 90 <= code <= 97:
            style = replace(style, fg=code - 30 if code < 90 else code - 82)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            style = replace(style, bg=code - 40 if code < 100 else code - 92)
        elif code == 39:
            style = replace(style, fg=None)
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48) and i < len(codes):
            # 5;n picks one of 256 colours (the first 16 are ours), 2;r;g;b a true colour.
            if codes[i] == 5 and i + 1 < len(codes):
                n = codes[i + 1]
                if n < 16:
                    style = replace(style, fg=n) if code == 38 else replace(style, bg=n)
                i += 2
            elif codes[i] == 2:
                i += 4
            else:
                i += 1
    return style


def to_html(text: str) -> Markup:
    """``text`` escaped for HTML, its SGR colours as spans."""
    out: list[str] = []
    style = _Style()
    at = 0

    def emit(piece: str) -> None:
        if not piece:
            return
        classes = style.classes()
        if classes:
            out.append(f'<span class="{classes}">{escape(piece)}</span>')
        else:
            out.append(str(escape(piece)))

    for m in _ESCAPE.finditer(text):
        emit(text[at : m.start()])
        at = m.end()
        if m.group(1) is not None:
            style = _apply(style, m.group(1))
    emit(text[at:])
    return Markup("".join(out))
