"""The engine (DESIGN §5, §9): load → validate → approve → plan → apply → record, and the loop around it.

    desired.py     approve + validate (memoised by blob) -> the desired state
    plan.py        the pure planner: desired + live -> actions, checks, blocked
    executor.py    the actions against the stores, one partner at a time, isolated
    journal.py     the record step: status derived, audit entries appended, records committed
    status.py      phase, health and conditions, computed in one place
    reconciler.py  the core path a command calls
    loop.py        partnerctl run; metrics.py its Prometheus metrics, /healthz, /readyz
"""

from __future__ import annotations

from reconciler.engine.journal import Journal
from reconciler.engine.plan import Action, Plan, make_plan
from reconciler.engine.reconciler import ApplyOutcome, Options, PlanOutcome, Reconciler

__all__ = ["Action", "ApplyOutcome", "Journal", "Options", "Plan", "PlanOutcome", "Reconciler", "make_plan"]
