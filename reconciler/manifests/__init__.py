"""Manifests (DESIGN §3): YAML loading, the models of the four kinds, policy rules and validation."""
