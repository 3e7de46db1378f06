"""The compliance report's formats: Markdown for people, CSV for spreadsheets, JSON, HTML for print."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable
from typing import Any

__all__ = ["FORMATS", "MEDIA_TYPES", "broken", "render"]

FORMATS = ("markdown", "csv", "json", "html")
MEDIA_TYPES = {"markdown": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8",
               "json": "application/json", "html": "text/html; charset=utf-8"}  # fmt: skip


def render(document: dict[str, Any], form: str) -> str:
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {
        "json": lambda d: json.dumps(d, indent=2, ensure_ascii=False) + "\n",
        "markdown": markdown,
        "csv": table,
        "html": printable,
    }
    return renderers[form](document)


def broken(document: dict[str, Any]) -> str:
    head = document["auditHead"]
    return f"{head['problem']} (first broken entry: seq {head['firstBrokenSeq']}); see partnerctl audit verify"


def _scope_names(partner: dict[str, Any], *, unused: bool = False) -> str:
    return ", ".join(s["name"] for s in partner["scopes"] if s["unused"] or not unused)


def _last_approval(partner: dict[str, Any]) -> dict[str, Any]:
    return partner["approvals"][-1] if partner["approvals"] else {}


def _delivered(partner: dict[str, Any]) -> tuple[int, int]:
    return (sum(hook["delivered30d"] for hook in partner["webhooks"]),
            sum(hook["failed30d"] for hook in partner["webhooks"]))  # fmt: skip


# --- Markdown, for people ----------------------------------------------------------------------------------


def _md(value: Any) -> str:
    """A value in a Markdown table cell: no pipe or line break can break the table, no HTML gets through."""
    text = "—" if value is None or value == "" else str(value)
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def markdown(document: dict[str, Any]) -> str:
    head = document["auditHead"]
    lines = []
    if not head["verified"]:
        lines += [f"> **WARNING: the audit chain does not verify** — {_md(broken(document))}. The evidence below",
                  "> comes from live state and an audit log that has been altered.", ""]  # fmt: skip
    lines += [
        f"# Partner compliance report{' — ' + _md(document['tenant']) if document['tenant'] else ''}", "",
        f"- Generated: {_md(document['generatedAt'])}",
        f"- Revision: `{_md(document['revision'])}`",
        f"- Audit head: seq {head['seq']}, `{head['hash']}` — {'verified' if head['verified'] else 'NOT VERIFIED'}",
        f"- Partners: {len(document['partners'])}", "",
        "| Partner | Organization | Phase/Health | Last approval | Policy document | Review due | Credential "
        "| Rotates | Unused scopes | Delivered/failed (30 d) | Last sync |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for partner in document["partners"]:
        approval, review, credential = _last_approval(partner), partner["accessReview"], partner["credential"] or {}
        delivered, failed = _delivered(partner)
        due = (review["dueAt"] or "")[:10] + (" **OVERDUE**" if review["overdue"] else "")
        lines.append("| " + " | ".join([
            _md(partner["partner"]), _md(partner["organization"]["displayName"]),
            f"{partner['phase']}/{partner['health']}", _md((approval.get("approvedAt") or "")[:10]),
            _md(approval.get("policyDocument")), due, _md(credential.get("method")),
            _md((credential.get("rotatesAt") or "")[:10]), _md(_scope_names(partner, unused=True)),
            f"{delivered}/{failed}", _md(partner["lastSuccessfulSync"]),
        ]) + " |")  # fmt: skip
    for partner in document["partners"]:
        lines += ["", f"## {_md(partner['partner'])}", "", "Approvals:", ""]
        lines += [f"- `{_md(a['commit'])}` by {_md(a['approver'])} under {_md(a['policyDocument'])}, "
                  f"{_md(a['approvedAt'])}" for a in partner["approvals"]] or ["- none recorded"]  # fmt: skip
        lines += ["", "| Scope | Classification | Last used | Unused |", "|---|---|---|---|"]
        lines += [f"| {_md(s['name'])} | {_md(s['classification'])} | {_md(s['lastUsed'])} | "
                  f"{'yes' if s['unused'] else 'no'} |" for s in partner["scopes"]]  # fmt: skip
        credential = partner["credential"]
        if credential is not None:
            lines += ["", f"Credential: {_md(credential['method'])}, client `{_md(credential['clientId'])}`, issued "
                      f"{_md(credential['issuedAt'])}, {credential['rotations']} rotation(s), rotates "
                      f"{_md(credential['rotatesAt'])}" + (f", keys {_md(', '.join(credential['keyIds']))}"
                                                          if credential["keyIds"] else "")]  # fmt: skip
        review = partner["accessReview"]
        lines += ["", f"Access review: last {_md(review['lastReviewedAt'])}, due {_md(review['dueAt'])}"
                  + (" — **overdue**" if review["overdue"] else "")]  # fmt: skip
        if partner["webhooks"]:
            lines += ["", "| Webhook | State | Delivered (30 d) | Failed (30 d) |", "|---|---|---|---|"]
            lines += [f"| {_md(h['name'])} | {_md(h['state'])} | {h['delivered30d']} | {h['failed30d']} |"
                      for h in partner["webhooks"]]  # fmt: skip
    return "\n".join(lines) + "\n"


# --- CSV, for spreadsheets ---------------------------------------------------------------------------------

COLUMNS = ("partner", "organization", "organizationType", "phase", "health", "lastApprovalCommit", "approver",
           "policyDocument", "approvedAt", "approvals", "scopes", "unusedScopes", "credentialMethod", "clientId",
           "credentialIssuedAt", "rotations", "rotatesAt", "keyIds", "lastReviewedAt", "reviewDueAt", "reviewOverdue",
           "webhooks", "delivered30d", "failed30d", "lastSuccessfulSync", "revision", "auditVerified")  # fmt: skip


def _cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: one starting with = + - @ would run as a formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def table(document: dict[str, Any]) -> str:
    """One row per partner, the columns of COLUMNS; whether the audit chain verifies is a column of each row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for partner in document["partners"]:
        approval, review, credential = _last_approval(partner), partner["accessReview"], partner["credential"] or {}
        delivered, failed = _delivered(partner)
        row = [partner["partner"], partner["organization"]["displayName"], partner["organization"]["type"],
               partner["phase"], partner["health"], approval.get("commit"), approval.get("approver"),
               approval.get("policyDocument"), approval.get("approvedAt"), len(partner["approvals"]),
               " ".join(s["name"] for s in partner["scopes"]), " ".join(s["name"] for s in partner["scopes"]
                                                                        if s["unused"]),
               credential.get("method"), credential.get("clientId"), credential.get("issuedAt"),
               credential.get("rotations"), credential.get("rotatesAt"), " ".join(credential.get("keyIds") or []),
               review["lastReviewedAt"], review["dueAt"], str(review["overdue"]).lower(),
               " ".join(f"{h['name']}:{h['state']}" for h in partner["webhooks"]), delivered, failed,
               partner["lastSuccessfulSync"], document["revision"],
               str(document["auditHead"]["verified"]).lower()]  # fmt: skip
        writer.writerow([_cell("" if value is None else value) for value in row])
    return buffer.getvalue()


# --- HTML, for print ---------------------------------------------------------------------------------------

STYLE = """
body{font:10pt/1.4 system-ui,sans-serif;margin:2em;color:#111}
h1{font-size:16pt}h2{font-size:12pt;margin-top:1.6em;page-break-after:avoid}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #999;padding:2px 5px;text-align:left}
th{background:#eee}.warning{border:2px solid #b00;color:#b00;padding:.5em;font-weight:bold}
.bad{color:#b00;font-weight:bold}code{font-size:9pt}
@media print{body{margin:0}section{page-break-inside:avoid}}
"""


def _h(value: Any) -> str:
    return "—" if value is None or value == "" else html.escape(str(value))


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def printable(document: dict[str, Any]) -> str:
    """One self-contained page (inline style, no script, no external reference), escaped throughout."""
    head = document["auditHead"]
    title = "Partner compliance report" + (f" — {document['tenant']}" if document["tenant"] else "")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_h(title)}</title><style>{STYLE}</style></head><body>"]  # fmt: skip
    if not head["verified"]:
        parts.append(f'<p class="warning">WARNING: the audit chain does not verify — {_h(broken(document))}. '
                     "The evidence below comes from live state and an audit log that has been altered.</p>")
    parts += [
        f"<h1>{_h(title)}</h1>",
        f"<p>Generated {_h(document['generatedAt'])} from revision <code>{_h(document['revision'])}</code> and audit "
        f"head seq {head['seq']} <code>{_h(head['hash'])}</code> "
        f"({'verified' if head['verified'] else '<span class=bad>NOT VERIFIED</span>'}); "
        f"{len(document['partners'])} partners.</p>",
        "<table>",
        _row(["Partner", "Organization", "Phase/Health", "Last approval", "Policy document", "Review due",
              "Credential", "Rotates", "Unused scopes", "Delivered/failed (30 d)", "Last sync"], "th"),
    ]  # fmt: skip
    for partner in document["partners"]:
        approval, review, credential = _last_approval(partner), partner["accessReview"], partner["credential"] or {}
        delivered, failed = _delivered(partner)
        due = _h((review["dueAt"] or "")[:10]) + (" <span class=bad>OVERDUE</span>" if review["overdue"] else "")
        parts.append(_row([
            _h(partner["partner"]), _h(partner["organization"]["displayName"]),
            _h(f"{partner['phase']}/{partner['health']}"), _h((approval.get("approvedAt") or "")[:10]),
            _h(approval.get("policyDocument")), due, _h(credential.get("method")),
            _h((credential.get("rotatesAt") or "")[:10]), _h(_scope_names(partner, unused=True)),
            f"{delivered}/{failed}", _h(partner["lastSuccessfulSync"]),
        ]))  # fmt: skip
    parts.append("</table>")
    for partner in document["partners"]:
        parts += [f"<section><h2>{_h(partner['partner'])}</h2>", "<table>",
                  _row(["Approval commit", "Approver", "Policy document", "Approved at"], "th")]  # fmt: skip
        parts += [_row([f"<code>{_h(a['commit'])}</code>", _h(a["approver"]), _h(a["policyDocument"]),
                        _h(a["approvedAt"])]) for a in partner["approvals"]]  # fmt: skip
        parts += ["</table><table>", _row(["Scope", "Classification", "Last used", "Unused"], "th")]
        parts += [_row([_h(s["name"]), _h(s["classification"]), _h(s["lastUsed"]), "yes" if s["unused"] else "no"])
                  for s in partner["scopes"]]  # fmt: skip
        parts.append("</table>")
        credential = partner["credential"]
        if credential is not None:
            parts.append(f"<p>Credential: {_h(credential['method'])}, client "
                         f"<code>{_h(credential['clientId'])}</code>, issued {_h(credential['issuedAt'])}, "
                         f"{credential['rotations']} rotation(s), rotates {_h(credential['rotatesAt'])}"
                         + (f", keys {_h(', '.join(credential['keyIds']))}" if credential["keyIds"] else "") + "</p>")
        review = partner["accessReview"]
        parts.append(f"<p>Access review: last {_h(review['lastReviewedAt'])}, due {_h(review['dueAt'])}"
                     + (" <span class=bad>overdue</span>" if review["overdue"] else "") + "</p>")  # fmt: skip
        if partner["webhooks"]:
            parts += ["<table>", _row(["Webhook", "State", "Delivered (30 d)", "Failed (30 d)"], "th")]
            parts += [_row([_h(h["name"]), _h(h["state"]), str(h["delivered30d"]), str(h["failed30d"])])
                      for h in partner["webhooks"]]  # fmt: skip
            parts.append("</table>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
