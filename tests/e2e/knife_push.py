"""``knife job start|status|output`` and ``knife node status`` as knife-push runs them,
signed by chefsessionlib (a Chef API client from PyPI) with the user's key.

Run as a program, the way a person runs knife: configured like knife.rb (the Chef server
URL ending in /organizations/ORG, the node_name and the client_key file). It follows
knife-push's lib/chef/knife/job_start.rb and job_helpers.rb: the body it posts, polling
the job's uri until it has finished, and its exit code (0 only for a complete job whose
nodes all succeeded, nacked or were unavailable). An HTTP error exits 100 with Chef's
error text, as knife reports it.

    python knife_push.py --server-url URL --user NAME --key FILE job start CMD NODE...
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from typing import Any

from chefsessionlib import ChefSession
from chefsessionlib.chefsessionlibexceptions import InvalidAuthentication


class Knife:
    def __init__(self, server_url: str, user: str, key_file: str, version: str) -> None:
        with open(key_file, encoding="utf-8") as fh:
            key = fh.read()
        self.base = server_url.rstrip("/")
        self.http = ChefSession(user, key, authentication_version=version)

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = path if path.startswith("http") else f"{self.base}/{path}"
        data = json.dumps(body) if body is not None else None
        r = self.http.request(method, url, data=data, timeout=10)
        if r.status_code >= 300:
            raise SystemExit(_error(r.status_code, r.text))
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


def _error(status: int, text: str) -> int:
    try:
        message = "; ".join(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        message = text
    print(f"ERROR: {status}: {message}", file=sys.stderr)
    return 100


def get_quorum(quorum: str, total: int) -> int:
    match = re.match(r"^(\d+)(%?)$", quorum)
    if not match:
        raise SystemExit("Invalid Format please enter integer or percent")
    num = int(match.group(1))
    return math.ceil(num / 100 * total) if match.group(2) == "%" else num


def status_string(job: dict[str, Any]) -> tuple[bool, str]:
    if job["status"] == "new":
        return False, "Initialized."
    if job["status"] == "voting":
        return False, "Voting."
    total = sum(len(v) for v in job["nodes"].values())
    in_progress = sum(1 for s in job["nodes"] if s in ("new", "voting", "running"))
    if job["status"] == "running":
        return False, f"Running ({in_progress}/{total} in progress) ..."
    return True, job["status"].capitalize() + "."


def status_code(job: dict[str, Any]) -> int:
    ok = {"succeeded", "nacked", "unavailable"}
    return 0 if job["status"] == "complete" and set(job["nodes"]) <= ok else 1


def job_start(knife: Knife, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"command": args.command, "nodes": args.nodes}
    body["quorum"] = get_quorum(args.quorum, len(args.nodes))
    if args.file:
        with open(args.file, encoding="utf-8") as fh:
            body["file"] = "raw:" + fh.read()
    body["capture_output"] = args.capture
    body["env"] = json.loads(args.with_env) if args.with_env else {}
    if args.in_dir:
        body["dir"] = args.in_dir
    if args.as_user:
        body["user"] = args.as_user
    if args.timeout:
        body["run_timeout"] = int(args.timeout)
    result = knife.rest("POST", "pushy/jobs", body)
    uri = result["uri"]
    print(f"Started.  Job ID: {uri[-32:]}", flush=True)
    previous = "Initialized."
    while True:
        time.sleep(args.poll_interval)
        job = knife.rest("GET", uri)
        finished, state = status_string(job)
        if state != previous:
            print(state, flush=True)
            previous = state
        if finished:
            break
    print(json.dumps(job))
    return status_code(job)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="knife")
    p.add_argument("--server-url", required=True, help="chef_server_url")
    p.add_argument("--user", required=True, help="node_name")
    p.add_argument("--key", required=True, help="client_key")
    p.add_argument("--auth-version", default="1.3", help="authentication_protocol_version")
    sub = p.add_subparsers(dest="noun", required=True)
    job = sub.add_parser("job").add_subparsers(dest="verb", required=True)
    start = job.add_parser("start")
    start.add_argument("command")
    start.add_argument("nodes", nargs="+")
    start.add_argument("--timeout")
    start.add_argument("-q", "--quorum", default="100%")
    start.add_argument("--file")
    start.add_argument("--capture", action="store_true")
    start.add_argument("--with-env")
    start.add_argument("--as-user")
    start.add_argument("--in-dir")
    start.add_argument("--poll-interval", type=float, default=0.2)
    status = job.add_parser("status")
    status.add_argument("job_id")
    output = job.add_parser("output")
    output.add_argument("job_id")
    output.add_argument("node")
    output.add_argument("--channel", default="stdout")
    node = sub.add_parser("node").add_subparsers(dest="verb", required=True)
    node_status = node.add_parser("status")
    node_status.add_argument("nodes", nargs="*")
    args = p.parse_args(argv)
    knife = Knife(args.server_url, args.user, args.key, args.auth_version)
    try:
        if (args.noun, args.verb) == ("job", "start"):
            return job_start(knife, args)
        if (args.noun, args.verb) == ("job", "status"):
            print(json.dumps(knife.rest("GET", f"pushy/jobs/{args.job_id}")))
            return 0
        if (args.noun, args.verb) == ("job", "output"):
            path = f"pushy/jobs/{args.job_id}/output/{args.node}/{args.channel}"
            sys.stdout.write(knife.rest("GET", path).text)
            return 0
        states = (
            [knife.rest("GET", f"pushy/node_states/{n}") for n in args.nodes]
            if args.nodes
            else knife.rest("GET", "pushy/node_states")
        )
        for s in states:
            print(f"{s['node_name']}\t{s['availability']}")
        return 0
    except InvalidAuthentication as exc:
        return _error(401, str(exc))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
