"""Start-up: ``partnerctl validate <one file>`` and ``partnerctl --version`` as a ratio of
``python -c "import pydantic, yaml"`` (target for validate: at most 2x), each the best of many runs
measured side by side, alternating, so that the machine's noise falls on both alike."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 25
ROOT = Path(__file__).resolve().parent.parent
ONE_FILE = ROOT / "partners" / "ministry-social-affairs" / "northbridge-bank.yaml"


def once(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}")
    return elapsed


def main() -> dict[str, float]:
    partnerctl = str(Path(sys.executable).parent / "partnerctl")
    commands = {
        "baseline": [sys.executable, "-c", "import pydantic, yaml"],
        "validate": [partnerctl, "validate", str(ONE_FILE)],
        "version": [partnerctl, "--version"],
        "help": [partnerctl, "--help"],
    }
    best = {name: float("inf") for name in commands}
    for _ in range(ROUNDS):
        for name, command in commands.items():
            best[name] = min(best[name], once(command))
    ratios = {name: best[name] / best["baseline"] for name in commands if name != "baseline"}
    print(f"start-up: validate of one file {ratios['validate']:.2f}x `python -c \"import pydantic, yaml\"` "
          f"(target <= 2x); --version {ratios['version']:.2f}x, --help {ratios['help']:.2f}x "
          f"(baseline {best['baseline'] * 1000:.0f} ms)")  # fmt: skip
    return ratios


if __name__ == "__main__":
    main()
