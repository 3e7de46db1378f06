"""Rendering of command results as text, JSON or GitHub workflow annotations."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any

import click

from reconciler import clock

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan
    from reconciler.engine.reconciler import ApplyOutcome
    from reconciler.manifests.validation import Report


def emit_json(document: Any) -> None:
    """One JSON document on stdout and nothing else there (DESIGN §11)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False))


def validation_text(report: Report) -> str:
    lines: list[str] = []
    for file, violations in groupby(sorted(report.violations), key=lambda violation: violation.file):
        lines.append(file)
        lines.extend(f"  {v.file}:{v.line}: {v.code} {v.message}" for v in violations)
        lines.append("")
    lines.append(validation_summary(report))
    return "\n".join(lines)


def validation_summary(report: Report) -> str:
    noun = "file" if report.files == 1 else "files"
    if report.valid:
        return f"{report.files} {noun} checked: all valid"
    bad_files = len({violation.file for violation in report.violations})
    count = len(report.violations)
    return (
        f"{report.files} {noun} checked: {count} violation{'s' if count != 1 else ''} "
        f"in {bad_files} file{'s' if bad_files != 1 else ''}"
    )


def validation_github(report: Report) -> str:
    """``::error`` workflow commands, so violations show inline on the pull request."""
    lines = [
        f"::error file={_property(v.file)},line={v.line},title={_property(str(v.code))}::{_data(v.message)}"
        for v in sorted(report.violations)
    ]
    lines.append(validation_summary(report))
    return "\n".join(lines)


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


# --- plan, apply, status, credentials, audit ------------------------------------------------------

_SYMBOLS = {
    "register-partner": "+", "issue-credential": "+", "register-webhook": "+",
    "update-partner": "~", "rotate-credential": "~", "update-webhook": "~",
    "suspend-partner": "-", "revoke-credential": "-", "remove-webhook": "-", "decommission-partner": "-",
}  # fmt: skip


def plan_text(plan: Plan) -> str:
    lines = [f"Plan for revision {plan.revision[:12]}"]
    for partner, actions in groupby(plan.actions, key=lambda action: action.partner):
        lines.append(f"  {partner}")
        for action in actions:
            detail = ", ".join(f"{key}={value}" for key, value in sorted(action.details.items()) if key != "scopes")
            lines.append(
                f"    {_SYMBOLS.get(action.action, '*')} {action.action:<22} {action.reason}"
                + (f" ({detail})" if detail else "")
            )
    if plan.blocked:
        lines.append("Blocked (the approved version, if any, stays live):")
        lines.extend(f"  {item['partner']}: {item['reason']}: {item['message']}" for item in plan.blocked)
    if plan.checks:
        lines.append(f"Checks after apply: check-connectivity for {len(plan.checks)} partner(s)")
    partners = len({action.partner for action in plan.actions})
    if plan.actions:
        lines.append(f"Plan: {len(plan.actions)} action(s) for {partners} partner(s), {len(plan.blocked)} blocked.")
    else:
        lines.append(f"No changes: live state matches the approved desired state ({len(plan.blocked)} blocked).")
    return "\n".join(lines)


def apply_text(outcome: ApplyOutcome) -> str:
    lines = [f"Applying revision {outcome.revision[:12]}"]
    for result in outcome.results:
        mark = "ok  " if result.ok else "FAIL"
        lines.append(f"  {mark} {result.partner} {result.action}" + (f": {result.error}" if result.error else ""))
    for result in outcome.checks:
        state = "ok" if result.ok else result.error
        lines.append(f"  check {result.partner}: {state}")
    failed = sum(1 for result in outcome.results if not result.ok)
    lines.append(
        f"Apply complete: {len(outcome.results) - failed} action(s) done, {failed} failed, "
        f"{len(outcome.checks)} check(s) run."
    )
    return "\n".join(lines)


def status_text(entries: list[dict[str, Any]], *, detailed: bool = False) -> str:
    if not entries:
        return "No partners in live state yet (run partnerctl apply)."
    now = clock.now()
    header = ("PARTNER", "PHASE/HEALTH", "SCOPES", "CREDENTIAL AGE", "ROTATES", "LAST SYNC")
    rows = [header]
    for entry in entries:
        credential = entry["credential"]
        age = rotates = "-"
        if credential and credential.get("method") == "private_key_jwt":
            age = f"jwt, {len(credential['keyIds'])} key(s)"
        elif credential:
            issued = datetime.fromisoformat(credential["issuedAt"])
            age = f"{(now - issued).days}d"
            rotates = credential["rotatesAt"][:10]
        rows.append(
            (
                entry["partner"],
                f"{entry['phase']}/{entry['health']}",
                str(len(entry.get("scopes", []))),
                age,
                rotates,
                (entry["lastSuccessfulSync"] or "never")[:19],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if detailed:
        for entry in entries:
            lines.append("")
            lines.append(f"Scopes: {', '.join(entry.get('scopes', [])) or '-'}")
            approval = entry["approval"]
            if approval:
                lines.append(
                    f"Approval: commit {str(approval['commit'])[:12]} by {approval['approver'] or '(not verified)'}, "
                    f"policy document {approval['policyDocument'] or '-'}, at {approval['approvedAt']}"
                )
            credential = entry["credential"]
            if credential and credential.get("method") == "private_key_jwt":
                seen = credential.get("keysFirstSeen", {})
                keys = ", ".join(f"{kid} (first seen {(seen.get(kid) or '?')[:19]})" for kid in credential["keyIds"])
                where = f" at {credential['jwksUri']}" if credential.get("jwksUri") else ""
                keys = keys or "none seen yet"
                lines.append(f"Credential: {credential['clientId']}, private_key_jwt{where}; keys: {keys}")
            lines.append("Conditions:")
            lines.extend(
                f"  {c['type']:<19} {c['status']:<5} {c['reason']}: {c['message']}" for c in entry["conditions"]
            )
            for hook in entry["webhooks"]:
                lines.append(
                    f"Webhook {hook['name']}: {hook['state']} ({hook['consecutiveFailures']} failures) {hook['url']}"
                )
    return "\n".join(lines)


def pickup_text(document: dict[str, Any]) -> str:
    lines = [
        f"Credentials for {document['partner']} (shown once; store them in your secret manager now):",
        f"  client_id:      {document['client_id']}",
    ]
    if "client_secret" in document:
        lines.append(f"  client_secret:  {document['client_secret'] or '(unchanged: delivered before)'}")
    else:
        lines.append("  client auth:    private_key_jwt (no client secret: sign client assertions with your key)")
    lines.append(f"  token_endpoint: {document['token_endpoint']}")
    for name, secret in sorted(document["webhook_secrets"].items()):
        lines.append(f"  webhook {name} signing secret: {secret}")
    return "\n".join(lines)


def wrapped_text(document: dict[str, Any]) -> str:
    hours = (document["wrap_ttl"] or 0) / 3600
    return "\n".join([
        f"Credentials for {document['partner']} are wrapped in Vault (single use, valid {hours:g} h).",
        f"  wrap_token: {document['wrap_token']}",
        "Send the token to the partner's Tech Lead over a separate channel. They unwrap it once with:",
        "  partnerctl --secrets vault+https://VAULT:8200 credentials unwrap -     (token on stdin)",
        "  or: vault unwrap TOKEN",
        "If their unwrap fails, someone else used the token first: rotate the credentials at once.",
    ])  # fmt: skip


def audit_text(entries: list[Any]) -> str:
    lines = []
    for entry in entries:
        if not isinstance(entry, dict):  # a damaged line, as read: audit verify says where the chain breaks
            lines.append(f"{'?':>6} not an audit entry: {json.dumps(entry)[:80]}")
            continue
        details = json.dumps(entry.get("details", {}), sort_keys=True)
        lines.append(
            f"{entry.get('seq')!s:>6} {str(entry.get('time', ''))[:19]} {entry.get('actor', '')} "
            f"{entry.get('event')} {entry.get('partner') or '-'} {details}"
        )
    return "\n".join(lines) if lines else "The audit log is empty."
