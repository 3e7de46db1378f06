"""Manifests (DESIGN §3): YAML loading, the models of the four kinds, policy rules and validation.

    loader.py      YAML bytes -> plain data + the line of every node, safely
    models.py      pydantic models of the four kinds (they mirror schemas/)
    violations.py  violation codes and records
    rules.py       the policy rules: NAME/REF/SEC/PRIV/RES/LEGAL
    jwk.py         public JSON Web Keys for private_key_jwt: accepted types, sizes, algorithms (SEC-01)
    urls.py        webhook and jwksUri URL and address checks (SEC-01, SSRF)
    validation.py  per-file checks and the repository Validator
    worktree.py    reading a checkout's files (validate)
"""

from __future__ import annotations

from reconciler.manifests.loader import Document, YamlProblem, load_document
from reconciler.manifests.models import IntegrationPartner, ScopeCatalog, TenantPolicy, TrustRoot
from reconciler.manifests.validation import Report, Tree, Validator
from reconciler.manifests.violations import Code, Violation

__all__ = [
    "Code",
    "Document",
    "IntegrationPartner",
    "Report",
    "ScopeCatalog",
    "TenantPolicy",
    "Tree",
    "TrustRoot",
    "Validator",
    "Violation",
    "YamlProblem",
    "load_document",
]
