"""Runs every benchmark and prints its figures."""

from __future__ import annotations

from benchmarks import validate_bench

if __name__ == "__main__":
    validate_bench.main()
