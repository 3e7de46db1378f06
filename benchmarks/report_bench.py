"""``partnerctl report`` over 10,000 partners, as a ratio of a plan with nothing to do over the same
installation (issue 17: report it): the memoised plan the loop runs, and the full plan that compares
every partner (as after an unrelated commit). The report reads every record, credential, usage
counter and delivery count once and verifies the whole audit chain, so the full plan is its peer.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import git

from benchmarks.engine_bench import NOW, applied
from reconciler import clock
from reconciler.cli import wiring
from reconciler.cli.options import Settings
from reconciler.engine.report import build_report
from reconciler.engine.report_formats import render

PARTNERS = int(10_000 * float(os.environ.get("PARTNERCTL_BENCH_SCALE", "1")))
ROUNDS = 3


def main() -> dict[str, float]:
    os.environ["PARTNERCTL_NOW"] = NOW
    with tempfile.TemporaryDirectory(prefix="partnerctl-bench-") as folder:
        root, home, _, _ = applied(Path(folder), PARTNERS)
        settings = Settings(repo=str(root), home=home, approval="none", dev_allow_loopback_webhooks=True)
        engine = wiring.reconciler(settings, reads_repository=True)
        revision = git.Repo(root).head.commit.hexsha
        memo, full, reports, sizes = [], [], {"json": [], "markdown": [], "html": []}, {}
        for _ in range(ROUNDS):
            start = time.perf_counter()
            assert not engine.plan().plan.actions
            memo.append(time.perf_counter() - start)
            start = time.perf_counter()
            engine.plan(use_memo=False)
            full.append(time.perf_counter() - start)
            for form, times in reports.items():
                start = time.perf_counter()
                document = build_report(engine.stores, revision=revision, now=clock.now())
                text = render(document, form)
                times.append(time.perf_counter() - start)
                assert len(document["partners"]) == PARTNERS and document["auditHead"]["verified"]
                sizes[form] = len(text)
        engine.close()
    report_json = min(reports["json"])
    print(f"report over {PARTNERS:,} partners (JSON, {sizes['json'] / 1e6:.1f} MB): "
          f"{report_json / min(full):.2f}x a full no-op plan, {report_json / min(memo):.0f}x the memoised no-op plan "
          f"the loop runs")  # fmt: skip
    print(f"  Markdown {min(reports['markdown']) / min(full):.2f}x, HTML {min(reports['html']) / min(full):.2f}x "
          f"the full no-op plan")  # fmt: skip
    return {"report_vs_full_plan": report_json / min(full), "report_vs_memo_plan": report_json / min(memo)}


if __name__ == "__main__":
    main()
