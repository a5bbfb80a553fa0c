"""Benchmarks: acknowledgement latency, an alarm storm against Alertmanager, footprint.
Beside the product: it imports bot/, handlers/ and sandbox/; they never import it.

`python -m bench` (or `make bench`) runs them all, prints a table and writes
JSON and a PNG chart under `bench/results/`; `docs/benchmarks.md` says what is
measured and how to read it.
"""
