"""Settings: defaults, overridden by a config file, then by ``JOBYARD_*`` environment
variables, then by flags.

- A config file (``JOBYARD_CONFIG=/etc/jobyard/jobyard.toml``) holds settings by name:
  ``port = 8400``, ``smtp_host = "mail"``; an unknown name or a wrong type is refused.
- Any setting can be read from a file instead: ``JOBYARD_SMTP_PASSWORD_FILE=/run/secrets/smtp``
  (Docker secrets, systemd credentials); the file's content, without its final newline,
  is the value, so the secret never sits in the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".jobyard")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8400
    public_url: str = ""
    # Signs dashboard session cookies; empty: a key generated once in data_dir (one replica).
    session_secret: str = ""
    # Seals secret values (env, arguments): Fernet keys, comma-separated, the first sealing.
    # Empty: on SQLite a key made once in data_dir/secret.key; on PostgreSQL no secrets.
    secret_key: str = ""
    # Agents
    heartbeat_interval: float = 5.0
    node_ttl: float = 15.0
    node_grace: float = 10.0
    # A schedule slot at most this many seconds late still fires; older ones are missed.
    scheduler_grace: float = 10.0
    voting_timeout: float = 60.0
    abort_grace: float = 10.0
    # What a node run keeps of each of its streams, in bytes: stdout and stderr each keep
    # their first *_head_cap and their last *_tail_cap bytes; a marker line stands for
    # what was dropped in between (docs/output.md).
    stdout_head_cap: int = 262_144
    stdout_tail_cap: int = 786_432
    stderr_head_cap: int = 262_144
    stderr_tail_cap: int = 786_432
    file_cap: int = 50_000_000
    # An uploaded input file at most this size; a run's output files at most this in total.
    upload_cap: int = 500_000_000
    run_files_cap: int = 200_000_000
    # A job on a cluster that is still being made waits this long for it, then fails.
    cluster_wait: float = 3600.0
    # HTTP
    max_body: int = 1_048_576
    max_page_size: int = 100
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: addresses or CIDRs,
    # comma-separated ("10.0.0.5, 10.1.0.0/16"). Empty (the default): none; the peer's
    # address is the client's, whatever headers it sends.
    trusted_proxies: str = ""
    # Accept node names no agent has registered yet in native jobs (else 422 naming the
    # known ones); a request's allow_unknown_nodes overrides it.
    allow_unknown_nodes: bool = False
    # Notifications
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_tls: str = "none"  # none | starttls | tls
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "jobyard@localhost"
    # With smtp_tls = "none", a configured smtp_password is sent only if this is set: the
    # password would cross the network in clear.
    smtp_allow_plaintext_auth: bool = False
    webhook_allow_private: bool = False
    # Failed email and webhook deliveries are retried after base * 2**(attempt-1) s, capped.
    outbox_retry_base: float = 2.0
    outbox_retry_cap: float = 3600.0
    # Kragle: the organization whose public stacks GET /blockstacks shows without a log-in
    # (empty: none, unless the URL names one), and how long exec and webhooks wait for a run.
    kragle_org: str = ""
    kragle_exec_wait: float = 30.0
    # OpenTelemetry traces (the otel extra): spans for every request, job ids on them.
    otel: bool = False
    # How often each organization's retention policy is applied (seconds).
    retention_interval: float = 3600.0
    log_level: str = "info"
    # Dashboard sign-in (docs/operations.md "OIDC sign-in"). Passwords: the dashboard's form
    # and Kragle's /authenticate; turn off when everyone signs in through the provider.
    password_sign_in: bool = True
    # OpenID Connect: on when oidc_issuer is set (its /.well-known/openid-configuration is read).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid email profile"
    # The button's words, "Sign in with <name>" (empty: the issuer's host name).
    oidc_provider_name: str = ""
    # Email domains that may sign in, comma-separated (empty: any the provider vouches for).
    oidc_allowed_domains: str = ""
    # The claim whose values oidc_role_map maps ("groups", "realm_access.roles") and the
    # map, "VALUE=ORG:ROLE, ..." (VALUE * matches everyone): domain/signin.py.
    oidc_role_claim: str = ""
    oidc_role_map: str = ""
    # Create the account of a first-time user whom the role map gives a role (else only
    # existing accounts, matched by email, may sign in).
    oidc_auto_provision: bool = False
    # Count database statements and transactions, shown on /metrics (store/counting.py):
    # for benchmarks and diagnosis; off, because counting costs on every statement.
    count_statements: bool = False
    # Concurrent job submits share one transaction, each in its own savepoint
    # (store/writer.py); false gives each its own transaction.
    group_commit: bool = True
    # SQLite in a file: write transactions run on the event loop's thread, not through
    # aiosqlite's (store/inline.py); false keeps every statement on aiosqlite's thread.
    sqlite_inline_writes: bool = True
    # How `jobyard serve` speaks WebSocket to agents: "own" (api/agent_socket.py) or
    # "uvicorn" (uvicorn's protocol and the ASGI endpoint, as before).
    agent_socket: str = "own"
    # Once started, freeze the start-up heap out of the garbage collector's sight and raise
    # its thresholds (api/app.tune_garbage_collector); false keeps Python's defaults.
    tune_gc: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.trusted_proxy_list  # noqa: B018 (refuses a bad entry when the settings are made)
        if self.agent_socket not in ("own", "uvicorn"):
            raise ValueError(f"agent_socket is own or uvicorn, not {self.agent_socket!r}")
        for stream in ("stdout", "stderr"):
            if getattr(self, f"{stream}_head_cap") < 0:
                raise ValueError(f"{stream}_head_cap is a number of bytes: 0 or more")
            if getattr(self, f"{stream}_tail_cap") < 1024:
                raise ValueError(f"{stream}_tail_cap is a number of bytes: 1024 or more")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobyard.db').resolve()}"

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The trusted proxies as addresses/networks (ValueError naming a bad entry)."""
        out: list[str] = []
        for entry in self.trusted_proxies.replace(" ", ",").split(","):
            if not entry:
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or CIDR network"
                ) from None
            out.append(entry)
        return out

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for name, (value, _source) in _layers(cls, env).items():
            values[name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def sources(cls, env: dict[str, str], flags: set[str]) -> dict[str, str]:
        """Where each setting comes from: flag, env, env file, config file or default."""
        found = {name: source for name, (_v, source) in _layers(cls, env).items()}
        return {
            f.name: "flag" if f.name in flags else found.get(f.name, "default")
            for f in dataclasses.fields(cls)
            if f.name != "extra"
        }

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _layers(cls: type[Settings], env: dict[str, str]) -> dict[str, tuple[Any, str]]:
    """Each setting given by the config file or the environment: (value, source)."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
    out: dict[str, tuple[Any, str]] = {}
    config = env.get("JOBYARD_CONFIG")
    if config:
        for name, value in _config_file(Path(config), fields).items():
            out[name] = (value, f"config file {config}")
    for name, f in fields.items():
        var = f"JOBYARD_{name.upper()}"
        if var in env:
            out[name] = (_coerce(f.type, env[var], name), "env")
        elif f"{var}_FILE" in env:
            path = Path(env[f"{var}_FILE"])
            try:
                raw = path.read_text().removesuffix("\n")
            except OSError as exc:
                raise ValueError(f"{var}_FILE={path}: cannot read it: {exc.strerror}") from None
            out[name] = (_coerce(f.type, raw, name), f"env file {path}")
    return out


def _config_file(path: Path, fields: dict[str, dataclasses.Field[Any]]) -> dict[str, Any]:
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"JOBYARD_CONFIG={path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"JOBYARD_CONFIG={path}: not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(f"{path}: unknown setting {name!r}; settings are: {known}")
        kind = str(fields[name].type)
        if isinstance(value, str):
            out[name] = _coerce(kind, value, name)
        elif kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
        elif kind in ("int", "bool") and type(value).__name__ == kind:
            out[name] = value
        elif kind.startswith(("tuple", "list")) and isinstance(value, list):
            out[name] = tuple(value) if kind.startswith("tuple") else value
        else:
            raise ValueError(f"{path}: {name} = {value!r} is not a valid {kind}")
    return out


def _coerce(kind: Any, raw: str, name: str) -> Any:
    kind = str(kind)
    try:
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise ValueError(f"JOBYARD_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
