"""What every use case needs: the database, the clock, the settings, the hub, file storage."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from jobyard.domain.clock import Clock, SystemClock
from jobyard.domain.notifications import Subscription
from jobyard.domain.policies import Backoff, FailureBudget
from jobyard.domain.records import Principal
from jobyard.service.cookies import SessionCodec
from jobyard.service.files import FileStorage
from jobyard.service.hub import Hub
from jobyard.service.secrets import SecretBox
from jobyard.settings import Settings
from jobyard.store import Database

if TYPE_CHECKING:
    from jobyard.service.events import Observing
    from jobyard.service.oidc import ProviderState


class AgentLinks(Protocol):
    """The dispatch engine as the rest of the server sees it (it lives in ``dispatch``)."""

    def connected(self) -> int:
        """How many agents are connected to this process."""
        ...


# Password checks (argon2, tens to hundreds of ms of CPU each) run in worker threads, at most
# this many at once: the event loop keeps serving heartbeats and streams meanwhile, and a
# burst of sign-ins queues instead of taking every core.
VERIFY_THREADS = 2


@dataclass
class Runtime:
    """What one server process keeps in memory beside the database: the dispatch engine
    (made by the server's loops), the caches and gates of the use cases. Each is a typed
    field, made with its ``Services``; none is filled by importing a module."""

    engine: AgentLinks | None = None
    # Set while this process's dispatch engine runs: a submit then opens voting in its own
    # transaction (else the job waits in ``new`` for a dispatcher's starter).
    dispatching: bool = False
    server_identity: str | None = None
    # token secret -> (valid until (monotonic), principal, token expiry)
    tokens: dict[str, tuple[float, Principal, dt.datetime | None]] = field(default_factory=dict)
    # token hash -> the database lookup in flight for it (one at a time per token)
    token_lookups: dict[str, asyncio.Future[tuple[Principal, dt.datetime | None]]] = field(
        default_factory=dict
    )
    verify_gate: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(VERIFY_THREADS)
    )
    # per kind of attempt (sessions, hooks, ...): per-address budgets, per-account backoff
    failures: dict[str, FailureBudget] = field(default_factory=dict)
    backoffs: dict[str, Backoff] = field(default_factory=dict)
    # organization -> (valid until (monotonic), its enabled webhook subscriptions)
    subscriptions: dict[int, tuple[float, list[Subscription]]] = field(default_factory=dict)
    # cookie codecs by purpose ("web", "kragle"), made on first use
    codecs: dict[str, SessionCodec] = field(default_factory=dict)
    # the OpenID Connect provider (service/oidc.py): its checked settings and metadata
    oidc: ProviderState | None = None


@dataclass
class Services:
    db: Database
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    hub: Hub = field(default_factory=Hub)
    storage: FileStorage | None = None
    # What acts on every recorded event (service/observers.standard_observers unless given).
    observers: tuple[Observing, ...] = field(default_factory=lambda: _standard_observers())
    runtime: Runtime = field(default_factory=Runtime)
    # The key that seals secret values, and the plain values of recent jobs (for masking).
    secrets: SecretBox = field(init=False)

    def __post_init__(self) -> None:
        self.secrets = SecretBox(self.settings, sqlite=self.db.is_sqlite)
        if self.storage is None:
            self.storage = FileStorage(self.settings.files_dir)

    @property
    def files(self) -> FileStorage:
        assert self.storage is not None
        return self.storage

    def url(self, path: str) -> str:
        return self.settings.base_url + path


def _standard_observers() -> tuple[Observing, ...]:
    from jobyard.service.observers import standard_observers  # imports the use cases

    return standard_observers()
