"""knife-push against a real ``jobyard serve`` and real agents, every request Chef-signed.

The keys are made the way an administrator makes them (``jobyard admin chef-key add``);
the client is ``knife_push.py``, knife-push's commands over chefsessionlib, run as a
program. The exit code rule of ``knife job start`` is checked for a success, a failing
command, a failed quorum and a timeout. Then: the server stops promptly with Chef feeds
open.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.procs import Agent, Server, clean_env, start_agents, wait_until

pytestmark = pytest.mark.e2e

ORG, EMAIL = "acme", "admin@acme.test"
KNIFE = Path(__file__).with_name("knife_push.py")
SERVER_ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": "0.2",
    "JOBYARD_NODE_TTL": "1",
    "JOBYARD_NODE_GRACE": "2",
    "JOBYARD_VOTING_TIMEOUT": "4",
    "JOBYARD_ABORT_GRACE": "1",
}


@dataclass
class Chef:
    server: Server
    root: Path
    keys: dict[str, Path]

    @property
    def chef_server_url(self) -> str:
        return f"{self.server.url}/compat/chef/organizations/{ORG}"

    def knife(
        self, *args: str, user: str = "alice", version: str = "1.3", key: str | None = None
    ) -> Any:
        """Run a knife-push command as a person would; the completed process."""
        command = [
            sys.executable,
            str(KNIFE),
            "--server-url",
            self.chef_server_url,
            "--user",
            user,
            "--key",
            str(self.keys[key or user]),
            "--auth-version",
            version,
            *args,
        ]
        return subprocess.run(
            command, env=clean_env(), capture_output=True, text=True, timeout=90, check=False
        )


def _public_key_file(root: Path) -> tuple[Path, Path]:
    """A key pair made outside jobyard (as `knife user key create` or openssl would)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = root / "bob.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = root / "bob.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(scope="module")
def chef(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chef]:
    root = tmp_path_factory.mktemp("chef")
    server = Server(root / "server", env=SERVER_ENV)
    server.admin("create-org", ORG)
    server.admin("create-user", "--org", ORG, "--email", EMAIL, "--role", "admin")
    agent_token = server.admin("create-token", "--org", ORG, "--email", EMAIL, "--role", "agent")
    # alice: jobyard makes the pair and hands out the private key once.
    alice_key = root / "alice.pem"
    made = server.admin(
        "chef-key", "add", "alice", "--org", ORG, "--email", EMAIL,
        "--private-key-file", str(alice_key),
    )  # fmt: skip
    assert made["name"] == "alice" and "private_key" not in made, made
    assert alice_key.stat().st_mode & 0o077 == 0  # readable by its owner only
    # bob: a public key made elsewhere is registered.
    bob_key, bob_pub = _public_key_file(root)
    server.admin(
        "chef-key", "add", "bob", "--org", ORG, "--email", EMAIL, "--public-key", str(bob_pub)
    )
    listed = server.admin("chef-key", "list", "--org", ORG)
    assert [(k["name"], k["email"]) for k in listed] == [("alice", EMAIL), ("bob", EMAIL)]
    # carol is registered, then removed: her key no longer signs.
    carol_key = root / "carol.pem"
    server.admin(
        "chef-key", "add", "carol", "--org", ORG, "--email", EMAIL,
        "--private-key-file", str(carol_key),
    )  # fmt: skip
    server.admin("chef-key", "remove", "carol", "--org", ORG)
    server.start()
    agents = [
        Agent(root / n, server_url=server.url, token=agent_token["token"], node=n)
        for n in ("n1", "n2", "n3")
    ]
    try:
        start_agents(agents)
        yield Chef(server, root, {"alice": alice_key, "bob": bob_key, "carol": carol_key})
    finally:
        for a in agents:
            a.close()
        server.close()


def last_json(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return data


def test_node_status_then_a_job_that_succeeds_exits_0(chef: Chef) -> None:
    r = chef.knife("node", "status")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["n1\tavailable", "n2\tavailable", "n3\tavailable"]
    r = chef.knife("node", "status", "n1", "ghost", version="1.0")
    assert r.stdout.splitlines() == ["n1\tavailable", "ghost\tunavailable"], r.stderr
    r = chef.knife(
        "job", "start", 'echo "hello from $CHEF_PUSH_NODE_NAME"', "n1", "n2", "--capture",
        "--with-env", '{"STAGE": "blue"}', "--in-dir", "/tmp",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("Started.  Job ID: ") and "Complete." in r.stdout
    job = last_json(r.stdout)
    assert job["status"] == "complete"
    assert {k: sorted(v) for k, v in job["nodes"].items()} == {"succeeded": ["n1", "n2"]}
    assert (job["env"], job["dir"], job["capture_output"]) == ({"STAGE": "blue"}, "/tmp", True)
    # knife job status and knife job output, with another protocol version and key.
    r = chef.knife("job", "status", job["id"], user="bob", version="1.1")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "complete", r.stderr
    r = chef.knife("job", "output", job["id"], "n2", user="bob", version="1.0")
    assert r.returncode == 0 and r.stdout == "hello from n2\n", r.stderr


def test_a_failing_command_exits_1(chef: Chef) -> None:
    r = chef.knife("job", "start", "exit 3", "n1", version="1.1")
    assert r.returncode == 1, r.stdout + r.stderr
    job = last_json(r.stdout)
    assert (job["status"], job["nodes"]) == ("complete", {"failed": ["n1"]})
    # Started without --capture: Push Jobs keeps no output.
    r = chef.knife("job", "output", job["id"], "n1")
    assert r.returncode == 100 and "404" in r.stderr


def test_a_failed_quorum_exits_1_and_the_ready_node_was_ready(chef: Chef) -> None:
    r = chef.knife("job", "start", "echo never", "n2", "ghost", version="1.0")
    assert r.returncode == 1, r.stdout + r.stderr
    job = last_json(r.stdout)
    assert job["status"] == "quorum_failed"
    # The acked node was_ready, the never-seen one unavailable: nobody stopped the job,
    # so no node is aborted.
    assert job["nodes"] == {"was_ready": ["n2"], "unavailable": ["ghost"]}


def test_a_timed_out_job_exits_1(chef: Chef) -> None:
    r = chef.knife("job", "start", "sleep 60", "n3", "--timeout", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    job = last_json(r.stdout)
    assert (job["status"], job["nodes"]) == ("timed_out", {"timed_out": ["n3"]})


def test_refused_keys_exit_with_chefs_401_and_start_nothing(chef: Chef) -> None:
    before = httpx.get(
        f"{chef.chef_server_url}/pushy/jobs",
        headers={"Authorization": f"Bearer {token(chef)}"},
        timeout=10,
    ).json()
    r = chef.knife("job", "start", "echo x", "n1", user="carol")  # a removed key
    assert r.returncode == 100 and "Failed to authenticate as 'carol'" in r.stderr, r.stderr
    # bob's name with a key that is not bob's, and a name nobody registered.
    r = chef.knife("job", "start", "echo x", "n1", user="bob", key="alice")
    assert r.returncode == 100 and "Invalid signature for user or client 'bob'" in r.stderr
    chef.keys["mallory"] = chef.keys["alice"]
    r = chef.knife("job", "start", "echo x", "n1", user="mallory")
    assert r.returncode == 100 and "Failed to authenticate as 'mallory'" in r.stderr
    after = httpx.get(
        f"{chef.chef_server_url}/pushy/jobs",
        headers={"Authorization": f"Bearer {token(chef)}"},
        timeout=10,
    ).json()
    assert after == before


_TOKEN: dict[str, str] = {}


def token(chef: Chef) -> str:
    """A jobyard token beside the Chef keys (tokens keep working)."""
    if "t" not in _TOKEN:
        _TOKEN["t"] = chef.server.admin("create-token", "--org", ORG, "--email", EMAIL)["token"]
    return _TOKEN["t"]


def test_knife_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The same keys and signed jobs with the server on PostgreSQL."""
    server = Server(tmp_path / "server", database_url=pg_url, env=SERVER_ENV)
    server.admin("create-org", ORG)
    server.admin("create-user", "--org", ORG, "--email", EMAIL, "--role", "admin")
    agent_token = server.admin("create-token", "--org", ORG, "--email", EMAIL, "--role", "agent")
    key = tmp_path / "alice.pem"
    server.admin(
        "chef-key", "add", "alice", "--org", ORG, "--email", EMAIL,
        "--private-key-file", str(key),
    )  # fmt: skip
    server.start()
    agent = Agent(tmp_path / "pg1", server_url=server.url, token=agent_token["token"], node="pg1")
    try:
        agent.start()
        chef = Chef(server, tmp_path, {"alice": key})
        r = chef.knife("job", "start", "echo on postgres", "pg1", "--capture", version="1.1")
        assert r.returncode == 0, r.stdout + r.stderr
        job = last_json(r.stdout)
        assert job["nodes"] == {"succeeded": ["pg1"]}
        r = chef.knife("job", "output", job["id"], "pg1", version="1.0")
        assert r.stdout == "on postgres\n", r.stderr
        r = chef.knife("job", "start", "echo x", "pg1", "ghost")
        assert r.returncode == 1 and last_json(r.stdout)["nodes"] == {
            "was_ready": ["pg1"],
            "unavailable": ["ghost"],
        }
    finally:
        agent.close()
        server.close()


# -- stopping with feeds open


def test_the_server_stops_within_2s_with_chef_feeds_open(tmp_path: Path) -> None:
    server = Server(tmp_path / "server", env=SERVER_ENV)
    server.admin("create-org", ORG)
    server.admin("create-user", "--org", ORG, "--email", EMAIL, "--role", "admin")
    user = server.admin("create-token", "--org", ORG, "--email", EMAIL)["token"]
    agent_token = server.admin("create-token", "--org", ORG, "--email", EMAIL, "--role", "agent")
    server.start()
    agent = Agent(tmp_path / "n1", server_url=server.url, token=agent_token["token"], node="n1")
    base = f"{server.url}/compat/chef/organizations/{ORG}/pushy"
    headers = {"Authorization": f"Bearer {user}"}
    opened: list[str] = []
    errors: list[BaseException] = []

    def follow(url: str, extra: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", url, headers={**headers, **extra}, timeout=30) as r:
                for chunk in r.iter_bytes():
                    if chunk and url not in opened:
                        opened.append(url)
        except httpx.HTTPError as exc:  # the server went away: what this test expects
            errors.append(exc)

    try:
        agent.start()
        r = httpx.post(
            f"{base}/jobs", json={"command": "sleep 60", "nodes": ["n1"]}, headers=headers
        )
        chef_id = r.json()["id"]
        feeds = [
            f"{base}/job_status_feed/{chef_id}",
            f"{base}/jobs_status_feed/{chef_id}",
            f"{base}/job_status_feed",
        ]
        # The organization feed, asked for an id it never gave, starts with start_of_history.
        extra: list[dict[str, str]] = [{}, {}, {"Last-Event-ID": "from-elsewhere"}]
        threads = [
            threading.Thread(target=follow, args=(u, x), daemon=True)
            for u, x in zip(feeds, extra, strict=True)
        ]
        for t in threads:
            t.start()
        wait_until(lambda: len(opened) == 3, timeout=15, what="three feeds streaming")
        server.signal(signal.SIGTERM)
        assert server.proc is not None
        try:
            code = server.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the server did not stop within 2 s of SIGTERM with feeds open:\n{server.log()}"
            ) from None
        assert code == 0, server.log()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
    finally:
        agent.close()
        server.close()
