"""A polling agent that speaks TheEye's agent protocol, as theeye-agent does
(core/app.js, core/worker/listener): it gets a token (``POST /token``, HTTP Basic), registers
its host (``POST /{customer}/host/H``) and reads its configuration
(``GET /{customer}/agent/H/config``); then every cycle it asks
``GET /{customer}/job?process_next=1&hostname=H`` for its next job, downloads the job's
script, runs it, and sends the result with ``PUT /{customer}/job/{id}`` as
``{result: {state, data}}``; then a keep-alive.

Run: ``python tests/e2e/theeye_agent.py --url URL --customer ORG --token T --hostname H
--workdir DIR [--interval 0.2]``. It stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

running = True


def stop(signum: int, frame: Any) -> None:
    global running
    running = False


def run_job(api: httpx.Client, base: str, job: dict[str, Any], workdir: Path) -> None:
    script = job["script"]
    r = api.get(f"{base}/script/{script['id']}/download")
    r.raise_for_status()
    text = r.text
    if hashlib.md5(text.encode()).hexdigest() != script["md5"]:
        raise RuntimeError("script md5 mismatch")
    path = workdir / script["filename"]
    path.write_text(text)
    path.chmod(0o755)
    proc = subprocess.run(
        [str(path), *job.get("script_arguments", [])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    lastline = lines[-1] if lines else ""
    data = {
        "code": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "log": proc.stdout + proc.stderr,
        "lastline": lastline,
    }
    r = api.put(f"{base}/job/{job['id']}", json={"result": {"state": lastline, "data": data}})
    r.raise_for_status()
    print(f"finished job {job['id']}: {r.json()['lifecycle']} {r.json()['state']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--url", "--customer", "--token", "--hostname", "--workdir"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base = f"/compat/theeye/{args.customer}"
    agent = {"User-Agent": "Golum/v0.9.8"}
    with httpx.Client(base_url=args.url, headers=agent, timeout=10.0) as api:
        # As theeye-agent starts (core/app.js): a token for its client id and secret, its
        # host registered, its workers' configuration read; then the listener polls.
        r = api.post("/compat/theeye/token", auth=(args.token, "client-secret"))
        r.raise_for_status()
        api.headers["Authorization"] = f"Bearer {r.json()}"
        r = api.post(
            f"{base}/host/{args.hostname}",
            json={"version": "jobyard-test", "info": {"hostname": args.hostname}},
        )
        r.raise_for_status()
        print(f"registered as host {r.json()['host_id']}", flush=True)
        r = api.get(f"{base}/agent/{args.hostname}/config")
        r.raise_for_status()
        print(f"polling as {args.hostname} with {len(r.json()['workers'])} workers", flush=True)
        while running:
            try:
                r = api.get(f"{base}/job", params={"process_next": 1, "hostname": args.hostname})
                r.raise_for_status()
                jobs = r.json()["jobs"]
                if jobs:
                    run_job(api, base, jobs[0], workdir)
                api.put(f"{base}/agent/{args.hostname}")
            except (httpx.HTTPError, RuntimeError, subprocess.SubprocessError) as exc:
                print(f"cycle failed: {exc}", flush=True)
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
