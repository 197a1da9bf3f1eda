"""Secret values: how they are recognised when sealed, shown, and masked in output.

A value marked secret (a job's or a stack's environment variable, a task argument) is
stored *sealed*: ``jysec:1:<key id>:<token>``, a string that sits wherever the plain value
would (``jobs.env``, ``jobs.argv``, ``jobs.arguments``, ``tasks.env``, argument defaults,
trigger arguments). Sealing and opening need the key and live in ``service.secrets``; this
module holds the rules that need no key:

- a sealed value is never shown: every rendering passes values through ``masked``, which
  turns each sealed string (at any depth) into ``MASK``;
- ``MASK`` given back where a secret is stored means "keep the stored value", so a client
  that reads an object and writes it back (or an export applied again) changes nothing;
- output is masked with ``mask_text`` (or, as a stream, ``OutputMasker``) once the plain
  values are known: each value of at least ``MIN_MASKED`` characters, and each such line of
  a value that spans several lines, becomes ``MASK``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "••••"
SEALED_PREFIX = "jysec:1:"
# A sealed value inside any text (JSON, HTML, a script): Fernet tokens are url-safe base64.
_SEALED_TEXT = re.compile(r"jysec:1:[0-9a-f]{8}:[A-Za-z0-9_\-=]+")
_SEALED_BYTES = re.compile(_SEALED_TEXT.pattern.encode())
_PREFIX_BYTES = SEALED_PREFIX.encode()
_MASK_BYTES = MASK.encode()
# Shorter values are not masked in output: one or two characters occur by chance in any text.
MIN_MASKED = 3


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def masked(value: Any) -> Any:
    """``value`` with every sealed string, at any depth, shown as ``MASK``."""
    if isinstance(value, str):
        return MASK if value.startswith(SEALED_PREFIX) else value
    if isinstance(value, Mapping):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def hide_sealed(body: bytes) -> bytes:
    """A response body with any sealed value in it shown as ``MASK``: the last line of
    defence of every rendering (a search of the bytes when there is none)."""
    if _PREFIX_BYTES not in body:
        return body
    return _SEALED_BYTES.sub(_MASK_BYTES, body)


def hide_sealed_text(text: str) -> str:
    return _SEALED_TEXT.sub(MASK, text) if SEALED_PREFIX in text else text


def sealed_in(value: Any) -> list[str]:
    """Every sealed string in ``value``, at any depth, in order."""
    if isinstance(value, str):
        return [value] if value.startswith(SEALED_PREFIX) else []
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in sealed_in(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in sealed_in(v)]
    return []


def secret_names(env: Mapping[str, Any]) -> list[str]:
    """The names of the environment variables whose values are sealed."""
    return sorted(k for k, v in env.items() if is_sealed(v))


def needles(values: Iterable[str]) -> tuple[str, ...]:
    """What to mask for these plain values: each value and each line of it, longest first."""
    found: set[str] = set()
    for value in values:
        for part in (value, *value.splitlines()):
            part = part.strip("\r")
            if len(part) >= MIN_MASKED:
                found.add(part)
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


def mask_text(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each of ``secrets`` (as ``needles`` makes them) replaced by ``MASK``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class OutputMasker:
    """Masks a stream of chunks: a secret cut in two by a chunk boundary is masked too.

    ``feed`` returns what can be sent now; the end of a chunk that could be the start of a
    secret is held back until the next chunk (or ``flush``) tells.
    """

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets
        self._held = ""

    def feed(self, chunk: str) -> str:
        if not self.secrets:
            return chunk
        text = mask_text(self._held + chunk, self.secrets)
        keep = _open_prefix(text, self.secrets)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        text, self._held = self._held, ""
        return text


def _open_prefix(text: str, secrets: tuple[str, ...]) -> int:
    """The length of the longest end of ``text`` that begins some secret (0 if none)."""
    longest = 0
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(text)), longest, -1):
            if secret.startswith(text[len(text) - size :]):
                longest = size
                break
    return longest
