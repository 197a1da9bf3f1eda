"""Where the CLI finds its server, token and organization.

In order: flags (--server/--token/--org), the environment (JOBYARD_URL, JOBYARD_TOKEN,
JOBYARD_ORG), the profile ``jobyard login`` wrote, and the credentials ``jobyard up``
left in ./.jobyard/.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Profile:
    server: str
    token: str
    org: str | None = None


def profile_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jobyard" / "profile.json"


def save(profile: Profile) -> Path:
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"server": profile.server, "token": profile.token, "org": profile.org}, fh)
    return path


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def resolve(server: str | None, token: str | None, org: str | None) -> Profile | None:
    """The first source that has a token wins, and the organization comes only from a
    flag, the environment, or that same source: a saved profile never lends its
    organization (or server) to a token given on the command line."""
    env_url, env_token = os.environ.get("JOBYARD_URL"), os.environ.get("JOBYARD_TOKEN")
    org = org or os.environ.get("JOBYARD_ORG")
    token = token or env_token
    if token:
        saved_server = _load(profile_path()).get("server") if not (server or env_url) else None
        server = server or env_url or saved_server
        return Profile(server, token, org) if server else None
    saved = _load(profile_path())
    local = _load(Path(os.environ.get("JOBYARD_DATA_DIR", ".jobyard")) / "credentials.json")
    for source, url_key in ((saved, "server"), (local, "url")):
        if source.get("token"):
            url = server or env_url or source.get(url_key)
            return Profile(url, source["token"], org or source.get("org")) if url else None
    return None
