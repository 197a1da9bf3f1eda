"""Settings: defaults, overridden by ``JOBYARD_*`` environment variables, then by flags."""

from __future__ import annotations

import dataclasses
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
    # Agents
    heartbeat_interval: float = 5.0
    node_ttl: float = 15.0
    node_grace: float = 10.0
    # A schedule slot at most this many seconds late still fires; older ones are missed.
    scheduler_grace: float = 10.0
    voting_timeout: float = 60.0
    abort_grace: float = 10.0
    output_cap: int = 1_000_000
    file_cap: int = 50_000_000
    # An uploaded input file at most this size; a run's output files at most this in total.
    upload_cap: int = 500_000_000
    run_files_cap: int = 200_000_000
    # HTTP
    max_body: int = 1_048_576
    max_page_size: int = 100
    # Notifications
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_tls: str = "none"  # none | starttls | tls
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "jobyard@localhost"
    webhook_allow_private: bool = False
    # Failed email and webhook deliveries are retried after base * 2**(attempt-1) s, capped.
    outbox_retry_base: float = 2.0
    outbox_retry_cap: float = 3600.0
    # Kragle: the organization whose public stacks GET /blockstacks shows without a log-in
    # (empty: none, unless the URL names one), and how long exec and webhooks wait for a run.
    kragle_org: str = ""
    kragle_exec_wait: float = 30.0
    log_level: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobyard.db').resolve()}"

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
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f"JOBYARD_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _coerce(f.type, raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


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
