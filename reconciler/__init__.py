"""partnerctl: partner onboarding as code — manifests in git, reconciled into credentials, scopes and webhooks."""

__version__ = "0.1.0"
