"""Runs every benchmark and prints its figures."""

from __future__ import annotations

from benchmarks import (
    assertion_bench,
    cluster_bench,
    console_bench,
    engine_bench,
    fanout_bench,
    gateway_bench,
    postgres_bench,
    replay_bench,
    report_bench,
    startup_bench,
    usage_bench,
    validate_bench,
    vault_bench,
)

if __name__ == "__main__":
    startup_bench.main()
    validate_bench.main()
    engine_bench.main()
    report_bench.main()
    console_bench.main()
    gateway_bench.main()
    usage_bench.main()
    assertion_bench.main()
    fanout_bench.main()
    replay_bench.main()
    vault_bench.main()
    postgres_bench.main()
    cluster_bench.main()
