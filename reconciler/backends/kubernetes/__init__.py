"""Kubernetes: PartnerIntegration objects as the partner-record store, Lease leader election, Events.

    api.py      reaching the API (in-cluster or KUBECONFIG); its failures as partnerctl's kinds
    state.py    one PartnerIntegration per partner, status written with resourceVersion
    leader.py   coordination.k8s.io/v1 Lease election, as client-go does it
"""

from __future__ import annotations

from reconciler.backends.kubernetes.leader import LeaseElector
from reconciler.backends.kubernetes.state import KubernetesPartners

__all__ = ["KubernetesPartners", "LeaseElector"]
