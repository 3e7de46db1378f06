"""The tamper-evident audit log: a SHA-256 hash chain in ``audit.jsonl`` whose head the state store keeps.

Writing is two-phase. :meth:`AuditLog.append` writes entries to the file and returns the new head;
the caller commits that head in the state store together with the state change the entries
describe. Entries past the committed head belong to a change that never committed (the process
died in between): :meth:`AuditLog.recover` cuts them off before anything else is written. So the
log holds each event exactly once, and a change and its audit entry are never separated.

Verification recomputes every hash and compares the last entry with the committed head, so an
edit, deletion, reordering or truncation anywhere is found, with the first broken ``seq``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.stores.state import GENESIS_HASH, AuditHead

EVENTS = frozenset(
    {
        "partner.registered",
        "partner.updated",
        "partner.suspended",
        "partner.decommissioned",
        "approval.recorded",
        "credential.issued",
        "credential.delivered",
        "credential.delivery_refused",
        "credential.rotated",
        "credential.revoked",
        "handshake.verified",
        "access.denied",
        "webhook.registered",
        "webhook.failing",
        "webhook.flagged",
        "webhook.deactivated",
        "webhook.recovered",
    }
)


class AuditError(ReconcilerError):
    """The audit log does not match its committed head; nothing more is written to it."""


@dataclass(frozen=True)
class AuditEvent:
    """An event to record. ``details`` must never hold a secret."""

    event: str
    partner: str | None
    details: dict[str, Any]
    actor: str = "reconciler"
    time: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    intact: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str | None = None


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the entry without its own ``hash`` (``prev_hash`` included)."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def recover(self, head: AuditHead) -> None:
        """Cut off entries past the committed head: they describe changes that never committed."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if size == head.offset:
            return
        if size < head.offset:
            raise AuditError(
                f"{self.path} is shorter than its committed head (seq {head.seq}); "
                "it has been truncated: run partnerctl audit verify"
            )
        with self.path.open("rb+") as handle:
            if head.seq:
                handle.seek(max(0, head.offset - 4096))
                tail = handle.read(head.offset - max(0, head.offset - 4096)).rstrip(b"\n").rsplit(b"\n", 1)[-1]
                try:
                    last = json.loads(tail)
                except ValueError:
                    last = {}
                if last.get("seq") != head.seq or last.get("hash") != head.hash:
                    raise AuditError(
                        f"{self.path} does not end its committed part with seq {head.seq}; run partnerctl audit verify"
                    )
            handle.truncate(head.offset)

    def append(self, head: AuditHead, events: list[AuditEvent], *, now: datetime) -> AuditHead:
        """Write ``events`` after ``head``; return the head to commit with the matching state change."""
        if not events:
            return head
        seq, previous = head.seq, head.hash
        lines = []
        for event in events:
            if event.event not in EVENTS:
                raise ValueError(f"unknown audit event {event.event!r}")
            seq += 1
            entry = {
                "seq": seq,
                "time": (event.time or now).isoformat(),
                "actor": event.actor,
                "event": event.event,
                "partner": event.partner,
                "details": event.details,
                "prev_hash": previous,
            }
            entry["hash"] = previous = entry_hash(entry)
            lines.append(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
        data = "".join(lines).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return AuditHead(seq=seq, hash=previous, offset=head.offset + len(data), outbox_cursor=head.outbox_cursor)

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except ValueError:
                    yield {"seq": None, "unreadable": line.decode(errors="replace")}

    def verify(self, head: AuditHead) -> Verdict:
        previous, expected_seq, count = GENESIS_HASH, 1, 0
        for entry in self.entries():
            count += 1
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
