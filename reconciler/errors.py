"""The errors partnerctl raises on purpose; none of their messages ever carries a secret.

ReconcilerError
├── UsageError          the command line or environment is wrong (exit 2)
└── RepositoryError     the partner repository cannot be read
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
