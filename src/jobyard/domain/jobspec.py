"""What a caller asks for when creating a job, checked before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.quorum import Quorum
from jobyard.domain.targets import Target

DEFAULT_RUN_TIMEOUT = 3600
MAX_RUN_TIMEOUT = 7 * 24 * 3600
_ENV_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

# Fields fixed once a job is submitted; name and description stay editable.
FROZEN_AFTER_SUBMIT = (
    "command",
    "argv",
    "target",
    "quorum",
    "run_timeout",
    "env",
    "dir",
    "capture_output",
)


@dataclass(frozen=True)
class JobSpec:
    target: Target
    command: str = ""
    argv: tuple[str, ...] | None = None
    name: str | None = None
    description: str = ""
    quorum: Quorum = field(default_factory=Quorum)
    run_timeout: int | None = DEFAULT_RUN_TIMEOUT
    env: dict[str, str] = field(default_factory=dict)
    dir: str | None = None
    capture_output: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.argv is not None:
            if self.command:
                raise Invalid(
                    "give either command (a shell string) or argv (a list), not both", "argv"
                )
            if not self.argv or not all(isinstance(a, str) for a in self.argv):
                raise Invalid("argv must be a non-empty list of strings", "argv")
            if any("\x00" in a for a in self.argv):
                raise Invalid("argv must not contain NUL characters", "argv")
        elif not self.command or not self.command.strip():
            raise Invalid("a job needs a command (a shell string) or argv (a list)", "command")
        if "\x00" in self.command:
            raise Invalid("command must not contain NUL characters", "command")
        if self.run_timeout is not None and not 1 <= self.run_timeout <= MAX_RUN_TIMEOUT:
            raise Invalid(
                f"run_timeout is in seconds, between 1 and {MAX_RUN_TIMEOUT}", "run_timeout"
            )
        for key, value in self.env.items():
            if not key or not set(key) <= _ENV_NAME_OK or key[0].isdigit():
                raise Invalid(f"{key!r} is not an environment variable name", "env")
            if not isinstance(value, str) or "\x00" in value:
                raise Invalid(f"env[{key}] must be a string without NUL characters", "env")
        if self.name is not None and not 1 <= len(self.name) <= 200:
            raise Invalid("name is 1 to 200 characters", "name")
        # PostgreSQL cannot store NUL in text: refuse it on every database alike.
        for label, text in (
            ("name", self.name),
            ("description", self.description),
            ("dir", self.dir),
        ):
            if text is not None and "\x00" in text:
                raise Invalid(f"{label} must not contain NUL characters", label)
        count = self.quorum.count
        if self.target.nodes and count is not None and count > len(self.target.nodes):
            raise Invalid(
                f"quorum {count} is more than the {len(self.target.nodes)} target nodes", "quorum"
            )

    @property
    def display_command(self) -> str:
        if self.argv is not None:
            import shlex

            return shlex.join(self.argv)
        return self.command

    def row(self) -> dict[str, Any]:
        """The job-table columns this spec sets."""
        return {
            "name": self.name,
            "description": self.description,
            "command": self.display_command,
            "argv": list(self.argv) if self.argv is not None else None,
            "target": self.target.as_json(),
            "quorum": self.quorum.render(),
            "run_timeout": self.run_timeout,
            "env": dict(self.env),
            "dir": self.dir,
            "capture_output": self.capture_output,
            "meta": dict(self.meta),
        }
