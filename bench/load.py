"""HTTP load generators: ``wrk`` (Debian's package) when installed, else a small asyncio one.

Both keep N keep-alive connections busy with the same request (a POST with a body, or a
GET) for a fixed time, in a separate
process from the server, and report requests/s and latency percentiles. Only loopback
URLs are accepted: the benchmarks never send traffic anywhere else.

``python -m bench.load URL --body-file F [--header 'K: V'] -c N -d SECONDS`` runs the asyncio
generator and prints its figures as JSON (what ``run_python`` reads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.figures import percentile

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Load:
    tool: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50: float  # seconds
    p99: float
    bad: int  # non-2xx responses and socket errors

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK and not (host or "").startswith("127."):
        raise ValueError(f"refusing to load {url}: benchmarks target loopback only")


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    tool: str,
    method: str = "POST",
) -> Load:
    _check_loopback(url)
    if tool == "wrk":
        return run_wrk(url, body, headers, connections, seconds, method)
    return run_python(url, body, headers, connections, seconds, method)


# -- wrk

_LUA = """
local f = io.open("{body}", "rb")
wrk.method = "{method}"
local body = f:read("*a")
if #body > 0 then wrk.body = body end
f:close()
{headers}
"""
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    method: str = "POST",
) -> Load:
    with tempfile.TemporaryDirectory(prefix="jobyard-wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
        script = Path(tmp) / "post.lua"
        script.write_text(_LUA.format(body=body_path, headers=lines, method=method))
        argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    if out.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{text}\n{out.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    assert total is not None
    pcts = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", text, re.M))
    bad = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        bad += int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        bad += sum(int(x) for x in m.groups())
    return Load(
        tool="wrk",
        connections=connections,
        seconds=_seconds(total.group(2)),
        requests=int(total.group(1)),
        rps=rps,
        p50=_seconds(pcts["50"]),
        p99=_seconds(pcts["99"]),
        bad=bad,
    )


# -- the asyncio generator (used when wrk is not installed)


def run_python(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    method: str = "POST",
) -> Load:
    with tempfile.NamedTemporaryFile(prefix="jobyard-body-", suffix=".json") as fh:
        fh.write(body)
        fh.flush()
        argv = [sys.executable, "-m", "bench.load", url, "--body-file", fh.name]
        for k, v in headers.items():
            argv += ["--header", f"{k}: {v}"]
        argv += ["-c", str(connections), "-d", str(seconds), "--method", method]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    return Load(**json.loads(out.stdout))


async def _connection(
    host: str, port: int, request: bytes, until: float, latencies: list[float], bad: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append(time.monotonic() - started)
            if not 200 <= status < 400:
                bad[0] += 1
    finally:
        writer.close()


async def _generate(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    seconds: float,
    method: str = "POST",
) -> Load:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = [
        f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    latencies: list[float] = []
    bad = [0]
    started = time.monotonic()
    until = started + seconds
    results = await asyncio.gather(
        *(_connection(host, port, request, until, latencies, bad) for _ in range(connections)),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    bad[0] += sum(1 for r in results if isinstance(r, BaseException))
    return Load(
        tool="python-asyncio",
        connections=connections,
        seconds=elapsed,
        requests=len(latencies),
        rps=len(latencies) / elapsed,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        bad=bad[0],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Keep N connections busy with one POST.")
    parser.add_argument("url")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--method", default="POST")
    args = parser.parse_args()
    _check_loopback(args.url)
    headers = dict(h.split(": ", 1) for h in args.header)
    body = Path(args.body_file).read_bytes()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    load = asyncio.run(
        _generate(args.url, body, headers, args.connections, args.duration, args.method)
    )
    print(json.dumps(load.as_dict()))


if __name__ == "__main__":
    main()
