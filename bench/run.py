"""Every benchmark in one run (``make bench``): submit, fan-out with the queues beside it,
notification fan-out, and 10,000 cron triggers.

    python -m bench.run [--quick] [--json FILE] [--profile DIR]

``--quick`` shortens every measurement (a smoke run: its figures are not the ones to quote).
Each part can also run alone: ``python -m bench.submit``, ``python -m bench.fanout``,
``python -m bench.queues``, ``python -m bench.notify_fanout``, ``python -m bench.schedules``;
``--help`` on each lists its settings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench import fanout, processes, submit
from bench.machine import describe, machine_load, print_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the jobyard servers into DIR")
    args = parser.parse_args()
    common = ["--no-machine"]
    if args.json:
        common += ["--json", args.json]
    if args.profile:
        common += ["--profile", args.profile]
    submit_args = ["-d", "4", "--warmup", "1", "--floor-jobs", "128"] if args.quick else []
    fanout_args = (
        [
            "--sizes",
            "10,100",
            "--reps",
            "3",
            "--tp-agents",
            "200",
            "--tp-seconds",
            "5",
            "--idle",
            "1000",
            "--settle",
            "3",
            "--queue-jobs",
            "4000",
        ]
        if args.quick
        else []
    )
    started = time.monotonic()
    processes.raise_nofile(24_576)
    print_machine(describe(processes.PG_ADMIN_URL))
    submit.main(submit_args + common)
    fanout.main(fanout_args + common)
    # These two run in their own processes (their own event loops and settings).
    notify_args = ["--watchers", "200", "--repeat", "2"] if args.quick else []
    schedule_args = ["--triggers", "1000", "--seconds", "10"] if args.quick else []
    subprocess.run([sys.executable, "-m", "bench.notify_fanout", *notify_args], check=False)
    subprocess.run([sys.executable, "-m", "bench.schedules", *schedule_args], check=False)
    minutes = (time.monotonic() - started) / 60
    print(f"\nall benchmarks done in {minutes:.1f} min; load average at the end {machine_load()}")


if __name__ == "__main__":
    main()
