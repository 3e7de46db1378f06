"""The audit chain's format (DESIGN §9): how entries are hashed and chained, and how a chain is verified.

Every journal backend writes entries made by :func:`chain`; ``audit verify`` runs :func:`verify`
over what a backend reads back. Each entry's ``hash`` is SHA-256 over its canonical JSON with
``prev_hash`` included, so an edit, deletion, reordering or truncation anywhere is found, with the
first broken ``seq``; comparing the last entry with the committed head finds a rewritten tail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.stores.records import GENESIS_HASH, AuditEvent, AuditHead
from reconciler.vocabulary import Event

__all__ = ["Verdict", "canonical", "chain", "entry_hash", "verify"]


@dataclass(frozen=True)
class Verdict:
    intact: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str | None = None


def canonical(entry: dict[str, Any]) -> str:
    """An entry as one line of canonical JSON: how it is hashed, stored in a table and exported."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the entry without its own ``hash`` (``prev_hash`` included)."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def chain(head: AuditHead, events: Iterable[AuditEvent], *, now: datetime) -> tuple[list[dict[str, Any]], AuditHead]:
    """The entries for ``events`` after ``head``, and the head after them (same offset and cursor)."""
    seq, previous = head.seq, head.hash
    entries = []
    for event in events:
        seq += 1
        entry = {
            "seq": seq,
            "time": (event.time or now).isoformat(),
            "actor": event.actor,
            "event": str(Event(event.event)),  # an unknown name is a bug: ValueError
            "partner": event.partner,
            "details": event.details,
            "prev_hash": previous,
        }
        entry["hash"] = previous = entry_hash(entry)
        entries.append(entry)
    return entries, AuditHead(seq=seq, hash=previous, offset=head.offset, outbox_cursor=head.outbox_cursor)


def verify(entries: Iterable[Any], head: AuditHead) -> Verdict:
    """Recompute the chain over ``entries`` (as read back, possibly damaged) against the committed ``head``."""
    previous, expected_seq, count = GENESIS_HASH, 1, 0
    for entry in entries:
        count += 1
        if not isinstance(entry, dict):
            return Verdict(False, count, expected_seq, "entry is not a JSON object (the line was replaced)")
        seq = entry.get("seq")
        if seq != expected_seq:
            return Verdict(False, count, expected_seq, f"expected seq {expected_seq}, found {seq}")
        if entry.get("prev_hash") != previous:
            return Verdict(False, count, expected_seq, "prev_hash does not match the previous entry")
        if entry.get("hash") != entry_hash(entry):
            return Verdict(False, count, expected_seq, "entry was modified (hash mismatch)")
        if seq == head.seq and entry["hash"] != head.hash:
            return Verdict(False, count, seq, "entry does not match the committed head (rewritten chain?)")
        previous = entry["hash"]
        expected_seq += 1
    last_seq = expected_seq - 1
    if last_seq < head.seq:
        return Verdict(False, count, last_seq + 1, f"log ends at seq {last_seq}; committed head is seq {head.seq}")
    return Verdict(True, count)
