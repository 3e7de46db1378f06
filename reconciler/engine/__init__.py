"""The engine (DESIGN §5, §9): desired state, plan, apply, status and the audit chain."""
