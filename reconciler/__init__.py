"""partnerctl: partner onboarding as code — manifests in git, reconciled into credentials, scopes and webhooks.

The packages, by the DESIGN section they implement (README *Architecture* draws how they depend):

    manifests/   §3   YAML loading, models, policy rules, validation
    approval/    §4   the approval gate: signed commits (git) or pull-request reviews (github)
    engine/      §5,9 desired state, plan, apply (executor), the journal (record step), status, the loop
    credentials       §6  client ids, secrets, keyed hashes, rotation arithmetic
    gateway/     §7   the ASGI gateway: OAuth2 tokens, the handshake, scope enforcement
    webhooks/    §8   publishing events, shaping, signing and delivering them
    stores/      §10  the ports: what the core asks of the stores, and the records they keep
    backends/    §10  the adapters: SQLite, Vault, Kubernetes, git, GitHub
    cli/         §11  the partnerctl commands, and where the adapters are wired to the core
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
