"""Kubernetes: PartnerIntegration objects as the state store, Lease leader election."""
