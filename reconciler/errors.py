"""The errors partnerctl raises on purpose; none of their messages ever carries a secret.

ReconcilerError
├── UsageError          the command line or environment is wrong (exit 2)
├── RepositoryError     the partner repository cannot be read
├── StoreUnavailable    a store cannot be used now (sealed, unreachable, forbidden): stop, retry later
└── WriteConflict       another writer changed the same record first; nothing was written
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error partnerctl reports to a user as a message, not a traceback."""

    exit_code = 1


class UsageError(ReconcilerError):
    """Wrong arguments, options or environment."""

    exit_code = 2


class RepositoryError(ReconcilerError):
    """The partner repository (working tree or git) cannot be read."""


class StoreUnavailable(ReconcilerError):
    """A backend refuses every further call (sealed, unreachable, forbidden): the run stops, a retry converges."""


class WriteConflict(ReconcilerError):
    """A check-and-set write lost to another writer; the record is unchanged and a rerun converges."""
