"""Approval (DESIGN §4): which version of each manifest file is approved to be live.

    gate.py      the ApprovalGate interface, approval records and verdicts, --approval none
    history.py   the first-parent walk that finds each file's newest approved version
    git.py       --approval git: SSH-signed commits with Approved-by and Policy-Document trailers
    github.py    --approval github: APPROVED reviews of the merged pull request
"""

from __future__ import annotations

from reconciler.approval.gate import ApprovalGate, ApprovalRecord, Approved, NoApproval, Refused, Verdict

__all__ = ["ApprovalGate", "ApprovalRecord", "Approved", "NoApproval", "Refused", "Verdict"]
