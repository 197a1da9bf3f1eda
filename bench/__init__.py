"""Benchmarks of jobyard against the numbers in DESIGN.md, measured side by side.

Run them all with ``make bench`` (``python -m bench.run``), or one at a time:
``python -m bench.submit``, ``python -m bench.fanout``, ``python -m bench.queues``.
Each prints the machine, its settings and the raw figures; BENCHMARKS.md explains them.
They start their own servers on loopback ports and stop them; nothing here runs in the
test suite.
"""
