"""Sealing and opening secret values with the server's key (Fernet: AES-128-CBC + HMAC).

The key comes from ``Settings.secret_key`` (``JOBYARD_SECRET_KEY``, ``..._FILE`` or the
config file): one or more Fernet keys separated by commas or whitespace, the first sealing,
all opening. Without it, a server on SQLite makes ``<data_dir>/secret.key`` on first use
(mode 0600, next to the database it protects); a server on PostgreSQL refuses to store a
secret (409, saying what to set), because replicas making keys of their own could not open
each other's values.

A sealed value is ``jysec:1:<key id>:<Fernet token>``; the key id (the first 8 hex digits
of the key's SHA-256) says which key opens it, so an unknown key is reported as such.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken

from jobyard.domain.errors import Conflict, Invalid
from jobyard.domain.records import Job
from jobyard.domain.secrets import (
    MASK,
    SEALED_PREFIX,
    is_sealed,
    mask_text,
    needles,
    sealed_in,
)
from jobyard.domain.tasks import Argument, TaskSpec
from jobyard.service.keyfiles import read_or_create
from jobyard.service.keyfiles import replace as replace_file
from jobyard.settings import Settings
from jobyard.store.sealed import reseal_all

if TYPE_CHECKING:
    from jobyard.service.context import Services

KEY_FILE = "secret.key"
_CACHE = 1024


class SecretKeyError(Conflict):
    """Raised when a secret cannot be sealed or opened with the keys this server has."""

    title = "Secret key"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def parse_keys(text: str, where: str) -> list[bytes]:
    """Fernet keys in ``text`` (comma or whitespace separated), checked."""
    keys = [k.encode() for k in text.replace(",", " ").split()]
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"{where}: {key[:6].decode(errors='replace')}… is not a Fernet key (32 bytes, "
                "url-safe base64; make one with `jobyard admin new-secret-key`)"
            ) from None
    return keys


def new_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    """The keys of this server, loaded on first use, and the plain values of recent jobs."""

    def __init__(self, settings: Settings, *, sqlite: bool) -> None:
        self.settings = settings
        self.sqlite = sqlite
        self._keys: dict[str, Fernet] | None = None
        self._current: str | None = None
        self._plain: OrderedDict[tuple[str, ...], tuple[str, ...]] = OrderedDict()
        # Opened values of recent jobs: a job's commit goes to each of its nodes.
        self._opened: OrderedDict[str, str] = OrderedDict()

    @property
    def key_file(self) -> Path:
        return self.settings.data_dir / KEY_FILE

    def source(self) -> str:
        if self.settings.secret_key:
            return "JOBYARD_SECRET_KEY"
        if self.sqlite:
            return str(self.key_file)
        return ""

    def raw_keys(self, *, create: bool) -> list[bytes]:
        """The configured keys, first sealing; the key file is made if ``create``."""
        if self.settings.secret_key:
            return parse_keys(self.settings.secret_key, "JOBYARD_SECRET_KEY")
        if not self.sqlite:
            return []
        path = self.key_file
        if not create and not path.exists():
            return []
        return parse_keys(read_or_create(path, lambda: new_key() + "\n"), str(path))

    def reload(self) -> None:
        self._keys = None
        self._plain.clear()
        self._opened.clear()

    def _load(self, *, create: bool) -> dict[str, Fernet]:
        if self._keys is None or (create and self._current is None):
            raw = self.raw_keys(create=create)
            self._keys = {key_id(k): Fernet(k) for k in raw}
            self._current = key_id(raw[0]) if raw else None
        return self._keys

    def seal(self, plain: str) -> str:
        keys = self._load(create=True)
        if self._current is None:
            raise SecretKeyError(
                "this server has no secret key, so it cannot store secret values: set "
                "JOBYARD_SECRET_KEY (the same on every replica; make one with "
                "`jobyard admin new-secret-key`)"
            )
        token = keys[self._current].encrypt(plain.encode()).decode()
        return f"{SEALED_PREFIX}{self._current}:{token}"

    def open(self, sealed: str) -> str:
        if not is_sealed(sealed):
            return sealed
        plain = self._opened.get(sealed)
        if plain is None:
            plain = self._open(sealed)
            self._opened[sealed] = plain
            if len(self._opened) > _CACHE:
                self._opened.popitem(last=False)
        return plain

    def _open(self, sealed: str) -> str:
        kid, _, token = sealed[len(SEALED_PREFIX) :].partition(":")
        fernet = self._load(create=False).get(kid)
        if fernet is None:  # the key file may have been rotated under us
            self.reload()
            fernet = self._load(create=False).get(kid)
        if fernet is None:
            raise SecretKeyError(
                f"a secret value is sealed with key {kid}, which this server does not have "
                f"(its keys: {', '.join(self._load(create=False)) or 'none'}): "
                "give it in JOBYARD_SECRET_KEY"
            )
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(f"a secret value sealed with key {kid} is damaged") from None

    def plain_env(self, env: Mapping[str, Any]) -> dict[str, str]:
        return {k: self.open(v) if is_sealed(v) else v for k, v in env.items()}

    def plain_list(self, values: Sequence[str] | None) -> list[str] | None:
        return None if values is None else [self.open(v) for v in values]

    def needles_of(self, sealed: Sequence[str]) -> tuple[str, ...]:
        """What to mask in output for these sealed values (cached: output comes in chunks)."""
        key = tuple(sealed)
        found = self._plain.get(key)
        if found is None:
            found = needles(self.open(s) for s in key)
            self._plain[key] = found
            if len(self._plain) > _CACHE:
                self._plain.popitem(last=False)
        else:
            self._plain.move_to_end(key)
        return found


def merge_env(
    box: SecretBox,
    stored: Mapping[str, Any],
    env: Mapping[str, str] | None,
    secret_env: Mapping[str, str] | None,
    field: str = "env",
) -> dict[str, str]:
    """An environment as it is stored: ``env`` plain, ``secret_env`` sealed.

    ``MASK`` as a value, in either, keeps the secret ``stored`` under that name (what a
    client that read the object and sends it back gives); with no such secret it is refused.
    """
    env, secret_env = dict(env or {}), dict(secret_env or {})
    both = sorted(set(env) & set(secret_env))
    if both:
        raise Invalid(f"{both[0]!r} is given in env and in secret_env: give it once", field)
    out: dict[str, str] = {}
    for name, value in {**env, **secret_env}.items():
        if value == MASK:
            kept = stored.get(name)
            if not isinstance(kept, str) or not is_sealed(kept):
                raise Invalid(
                    f"{field}.{name}: give the value ({MASK} keeps a stored secret, and there "
                    "is none under this name)",
                    f"{field}.{name}",
                )
            out[name] = kept
        elif name in secret_env:
            if "\x00" in value:
                raise Invalid(f"secret_env.{name} must not contain NUL characters", field)
            out[name] = box.seal(value)
        else:
            out[name] = value
    return out


def with_sealed_env(box: SecretBox, stored: Mapping[str, Any], changes: dict[str, Any]) -> None:
    """Turn ``env``/``secret_env`` of a change into the stored form (in place): ``env``
    alone replaces the plain and the secret variables, ``secret_env`` alone the secret ones."""
    if "env" not in changes and "secret_env" not in changes:
        return
    secret = changes.pop("secret_env", None)
    if "env" in changes:
        plain = changes["env"]
    else:
        plain = {k: v for k, v in stored.items() if not is_sealed(v)}
    changes["env"] = merge_env(box, stored, plain, secret)


def seal_arguments(
    box: SecretBox,
    schema: Sequence[Argument],
    given: Any,
    stored: Any = None,
) -> Any:
    """Argument values (by name or by position) with those of secret arguments sealed.

    ``MASK`` keeps the value ``stored`` for that argument (given the same way); values
    sealed already stay as they are.
    """
    if given is None or not any(a.secret for a in schema):
        return given
    names = [a.name for a in schema]
    secret = {a.name for a in schema if a.secret}
    by_name = dict(zip(names, given, strict=False)) if isinstance(given, list) else given
    if not isinstance(by_name, Mapping):
        return given  # refused by bind_arguments
    before = stored if isinstance(stored, Mapping) else {}
    if isinstance(stored, list):
        before = dict(zip(names, stored, strict=False))
    out: dict[str, Any] = {}
    for name, value in by_name.items():
        if name not in secret or value is None or is_sealed(value):
            out[name] = value
        elif value == MASK:
            if not is_sealed(before.get(name)):
                raise Invalid(
                    f"arguments.{name}: give the value ({MASK} keeps a stored secret, and "
                    "there is none)",
                    f"arguments.{name}",
                )
            out[name] = before[name]
        else:
            out[name] = box.seal(str(value))
    return [out[n] for n in names[: len(given)]] if isinstance(given, list) else out


def seal_defaults(box: SecretBox, spec: TaskSpec, stored: TaskSpec | None) -> TaskSpec:
    """``spec`` with the defaults of its secret arguments sealed (``MASK``: the default
    ``stored`` for the argument of that name)."""
    if not any(a.secret and a.default is not None for a in spec.arguments):
        return spec
    before = {a.name: a.default for a in stored.arguments} if stored is not None else {}
    kept = seal_arguments(
        box,
        spec.arguments,
        {a.name: a.default for a in spec.arguments if a.secret and a.default is not None},
        before,
    )
    arguments = tuple(
        dataclasses.replace(a, default=kept[a.name]) if a.name in kept else a
        for a in spec.arguments
    )
    return dataclasses.replace(spec, arguments=arguments)


def opened(box: SecretBox, job: Job) -> Job:
    """``job`` as handed to the node that runs it: its secret values opened."""
    if not job_sealed(job):
        return job
    return dataclasses.replace(job, env=box.plain_env(job.env), argv=box.plain_list(job.argv))


def job_sealed(job: Job) -> list[str]:
    """The sealed values a job runs with (secret arguments are in its env too)."""
    return sealed_in(job.env) + sealed_in(job.argv)


def mask_output(box: SecretBox, job: Job, text: str) -> str:
    """Output of ``job`` as it may be stored and streamed: its secret values masked.

    Called at every point where output enters the server, before it is stored or published.
    """
    sealed = job_sealed(job)
    if not sealed or not text:
        return text
    return mask_text(text, box.needles_of(sealed))


@dataclass(frozen=True)
class Rotation:
    """What ``rotate_key`` did: values re-sealed, the new key's id, where the key now is."""

    resealed: int
    key_id: str
    key_file: Path | None
    new_key: str


async def rotate_key(svc: Services, new: str | None = None) -> Rotation:
    """Re-seal every stored secret with a new key, in one transaction.

    With the key file (SQLite, no ``JOBYARD_SECRET_KEY``) the new key is made here and the
    file holds the new and the old keys while the transaction runs, then the new one only:
    a crash at any point leaves a file that opens every stored value. With
    ``JOBYARD_SECRET_KEY`` the new key must be given (it is the operator's to keep), and
    the setting must then be changed to it before the servers start again.
    """
    box = svc.secrets
    configured = bool(svc.settings.secret_key)
    if configured and not new:
        raise Invalid(
            "the key comes from JOBYARD_SECRET_KEY: give the new key (--new-key, made with "
            "`jobyard admin new-secret-key`), then set JOBYARD_SECRET_KEY to it",
            "new_key",
        )
    old = box.raw_keys(create=False)
    if not old:
        raise SecretKeyError(f"there is no secret key to rotate ({box.source() or 'none set'})")
    try:
        (fresh,) = parse_keys(new or new_key(), "the new key")
    except ValueError as exc:
        raise Invalid(str(exc), "new_key") from None
    opener = {key_id(k): Fernet(k) for k in old}
    sealer, kid = Fernet(fresh), key_id(fresh)
    key_file = None if configured else box.key_file

    def reseal(sealed: str) -> str:
        found, _, token = sealed[len(SEALED_PREFIX) :].partition(":")
        if found not in opener:
            raise SecretKeyError(f"a stored value is sealed with key {found}, not given")
        plain = opener[found].decrypt(token.encode())
        return f"{SEALED_PREFIX}{kid}:{sealer.encrypt(plain).decode()}"

    if key_file is not None:
        replace_file(key_file, "".join(k.decode() + "\n" for k in (fresh, *old)))
    async with svc.db.begin() as tx:
        count = await reseal_all(tx.conn, reseal)
    if key_file is not None:
        replace_file(key_file, fresh.decode() + "\n")
    box.reload()
    return Rotation(count, kid, key_file, fresh.decode())
