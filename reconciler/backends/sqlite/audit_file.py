"""The audit log as a JSON Lines file (``audit.jsonl``), written in two phases around a committed head.

:meth:`AuditFile.append` writes entries after the committed part and returns where the file now
ends; the caller commits that offset with the head in the database. Entries past the committed
head belong to a change that never committed (the process died in between): :meth:`recover` cuts
them off before anything else is written. So the log holds each event exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.errors import IntegrityError, Stalled
from reconciler.stores.records import AuditHead

__all__ = ["AuditFile"]


class AuditFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def recover(self, head: AuditHead) -> None:
        """Cut off entries past the committed head: they describe changes that never committed."""
        size = self._size()
        if size == head.offset:
            return
        if size < head.offset:
            raise IntegrityError(
                f"{self.path} is shorter than its committed head (seq {head.seq}); "
                "it has been truncated: run partnerctl audit verify"
            )
        with self._open("rb+") as handle:
            if head.seq:
                start = max(0, head.offset - 4096)
                handle.seek(start)
                tail = handle.read(head.offset - start).rstrip(b"\n").rsplit(b"\n", 1)[-1]
                try:
                    last = json.loads(tail)
                except ValueError:
                    last = None
                if not isinstance(last, dict) or last.get("seq") != head.seq or last.get("hash") != head.hash:
                    raise IntegrityError(
                        f"{self.path} does not end its committed part with seq {head.seq}; run partnerctl audit verify"
                    )
            handle.truncate(head.offset)

    def append(self, offset: int, entries: list[dict[str, Any]]) -> int:
        """Write ``entries`` (already chained) after ``offset``; the offset to commit with their head."""
        data = "".join(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n" for entry in entries).encode()
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as error:
            raise Stalled(f"cannot write the audit log {self.path}: {error.strerror}") from error
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return offset + len(data)

    def entries(self, after: int = 0) -> Iterator[Any]:
        """Each line as JSON; a line that is not JSON is yielded as a marker verification rejects. ``after``:
        lines whose seq is at most that are skipped undecoded (a reader following the log from a cursor)."""
        if not self.path.exists():
            return
        with self._open("rb") as handle:
            for line in handle:
                if after and (seq := _seq_of(line)) is not None and seq <= after:
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    yield {"seq": None, "unreadable": line.decode(errors="replace")}

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _open(self, mode: str) -> Any:
        try:
            return self.path.open(mode)
        except IsADirectoryError as error:
            raise Stalled(f"{self.path} is a folder, not the audit log") from error
        except OSError as error:
            raise Stalled(f"cannot read the audit log {self.path}: {error.strerror}") from error


def _seq_of(line: bytes) -> int | None:
    """The seq of a line as written (canonical JSON, keys sorted: only ``time`` follows ``seq``), without
    decoding the entry; None when the line does not have that shape (it is then decoded as usual)."""
    start = line.rfind(b'"seq":')
    if start < 0:
        return None
    digits = line[start + 6 : line.find(b",", start)].strip()
    return int(digits) if digits.isdigit() else None
