"""The errors partnerctl raises on purpose, in one tree whose kinds say how to handle them.

ReconcilerError         reported as a message, never a traceback (exit 1); no message carries a secret
├── UsageError          the command line or environment is wrong (exit 2)
├── NotFound            no such partner, ref, repository or record
├── InvalidState        it exists, but its state does not allow this (rotate a suspended partner)
├── IntegrityError      stored data fails its own checks (audit chain, record seal): stop, a human looks
├── Transient           may work if tried again soon: the loop retries quickly
│   ├── StoreUnavailable    a backend is sealed, unreachable or timing out (the gateway answers 503)
│   ├── Busy                another partnerctl holds the installation's writer lock
│   └── WriteConflict       another writer changed the same record first; nothing was written
└── Stalled             cannot progress until someone changes something (permission denied, a missing
                        mount, key or CRD, an unreadable repository): the loop backs off and says so once

Adapters translate their library's errors into these kinds with ``raise … from exc``, so the cause
stays attached for the log while the message shown to a user stays short and secret-free.
"""

from __future__ import annotations

__all__ = [
    "Busy",
    "IntegrityError",
    "InvalidState",
    "NotFound",
    "ReconcilerError",
    "Stalled",
    "StoreUnavailable",
    "Transient",
    "UsageError",
    "WriteConflict",
]


class ReconcilerError(Exception):
    """Base of every error partnerctl reports to a user as a message, not a traceback."""

    exit_code = 1


class UsageError(ReconcilerError):
    """Wrong arguments, options or environment."""

    exit_code = 2


class NotFound(ReconcilerError):
    """The partner, git ref, repository or record named does not exist."""


class InvalidState(ReconcilerError):
    """The thing exists, but its current state does not allow the operation."""


class IntegrityError(ReconcilerError):
    """Stored data fails its own checks (a broken audit chain, a record altered outside partnerctl)."""


class Transient(ReconcilerError):
    """A condition that passes by itself; trying again soon is the right answer."""


class StoreUnavailable(Transient):
    """A backend cannot be used now (sealed, unreachable, timing out): the run stops, a retry converges."""


class Busy(Transient):
    """Another partnerctl process holds the installation's writer lock."""


class WriteConflict(Transient):
    """A check-and-set write lost to another writer; the record is unchanged and a rerun converges."""


class Stalled(ReconcilerError):
    """Nothing converges until someone acts: a permission, a mount, a key, a CRD or a repository is missing."""
