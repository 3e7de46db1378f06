"""What a problem in a manifest looks like: the violation codes and the violation record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Code(StrEnum):
    """Violation codes (DESIGN §3). Stable: CI annotations and dashboards key on them."""

    SCHEMA = "SCHEMA"
    NAME = "NAME-01"
    REF = "REF-01"
    SEC = "SEC-01"
    PRIV = "PRIV-01"
    RES = "RES-01"
    LEGAL = "LEGAL-01"


@dataclass(frozen=True, order=True)
class Violation:
    """One problem: where it is (file, 1-based line, dotted path) and what is wrong."""

    file: str
    line: int
    path: str
    code: Code
    message: str

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["code"] = str(self.code)
        return record


def dotted(path: tuple[str | int, ...]) -> str:
    """``("spec", "webhooks", 0, "url")`` -> ``spec.webhooks[0].url`` (the kubectl convention)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text
