"""What a stored file's name may hold.

Names are kept as given (any script, emoji, bidirectional marks), except characters that
break HTTP headers, terminals and logs: the C0 and C1 control characters, DEL and the
Unicode line and paragraph separators. Downloads send the name per RFC 6266/5987, so
every other character survives the round trip.
"""

from __future__ import annotations

from jobyard.domain.errors import Invalid

LINE_SEPARATORS = "\u2028\u2029"


def unsafe_char(name: str) -> str | None:
    """The first character a file name may not hold, or None."""
    for ch in name:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F or ch in LINE_SEPARATORS:
            return ch
    return None


def check_name(name: str, *, separators: bool = True) -> str:
    """``name`` when it is usable, else Invalid naming the offending character.

    ``separators`` also refuses ``/`` and ``\\`` (a plain name, not a path)."""
    bad = unsafe_char(name)
    if bad is not None:
        raise Invalid(
            f"file name {name!r} holds the control character U+{ord(bad):04X}; rename the file",
            "name",
        )
    if separators and ("/" in name or "\\" in name):
        raise Invalid(
            f"file name {name!r} holds a path separator ('/' or '\\\\'); send a plain name",
            "name",
        )
    return name
