"""What every use case needs: the database, the clock, the settings, the hub, file storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobyard.domain.clock import Clock, SystemClock
from jobyard.service.files import FileStorage
from jobyard.service.hub import Hub
from jobyard.settings import Settings
from jobyard.store import Database

if TYPE_CHECKING:
    from jobyard.service.events import Observing


@dataclass
class Services:
    db: Database
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    hub: Hub = field(default_factory=Hub)
    storage: FileStorage | None = None
    # What acts on every recorded event (service/observers.standard_observers unless given).
    observers: tuple[Observing, ...] = field(default_factory=lambda: _standard_observers())
    # Singletons owned by the running loops (the dispatch engine), keyed by name.
    runtime: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
