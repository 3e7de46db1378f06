"""Rate limits (DESIGN §7): token buckets shared by every gateway replica through the state store.

Two policies:

- **partner**: each partner's requests to the token endpoint and the API routes, from its tenant
  policy's ``gateway: {requestsPerMinute, burst}`` (600 a minute, bursts of 100 by default): a bucket
  of ``burst`` tokens refilled at ``requestsPerMinute / 60`` a second;
- **failed-auth**: failed client authentications per client id, 10 a minute (a bucket of 10 refilled
  at one every 6 s). While it is empty every client authentication of that id is answered 429 before
  its secret is looked at, so guessing costs nothing but 429s.

The shared bucket is the truth (:class:`~reconciler.stores.journal.LimitStore`). To keep the token
endpoint fast, a replica takes a small *lease* of a partner's tokens at once (2 % of the burst, at
most LEASE_MAX) and spends them locally for at most LEASE_SECONDS; tokens it took but did not spend
are lost, never granted twice, so replicas together admit at most the limit and at worst
(replicas x lease) fewer. A refused take is remembered until the next token is due, so a flood of
refused requests does not become a flood of store writes. The failed-auth bucket is read on every
client authentication (a read, not a write) and written on every failure: it is never leased.

Answers carry the IETF ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-
headers): ``RateLimit-Policy: "partner";q=100;w=10`` (a bucket of ``q`` refills in ``w`` seconds:
``burst`` per ``burst / rate`` seconds, rounded up, so the advertised rate never exceeds the real one)
and ``RateLimit: "partner";r=42;t=6`` (``r`` requests left now, full again in ``t`` seconds); a 429
adds ``Retry-After`` (seconds until the next token).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.stores.journal import LimitStore
from reconciler.stores.records import PartnerRecord

__all__ = ["FAILED_AUTH", "Limiter", "Policy", "Verdict", "partner_policy"]

LEASE_SECONDS = 1.0
LEASE_FRACTION = 0.02
LEASE_MAX = 20


@dataclass(frozen=True)
class Policy:
    """A token bucket: ``burst`` tokens, refilled at ``per_minute`` a minute."""

    name: str
    per_minute: int
    burst: int

    @property
    def rate(self) -> float:
        """Tokens a second."""
        return self.per_minute / 60.0

    @property
    def window(self) -> int:
        """Seconds an empty bucket takes to fill, rounded up."""
        return max(1, math.ceil(self.burst / self.rate))

    @property
    def lease(self) -> int:
        return max(1, min(LEASE_MAX, int(self.burst * LEASE_FRACTION)))

    def field(self) -> str:
        return f'"{self.name}";q={self.burst};w={self.window}'


FAILED_AUTH = Policy("failed-auth", per_minute=10, burst=10)


def partner_policy(record: PartnerRecord) -> Policy:
    """The partner's limit as its record holds it (the tenant policy's, as the engine applied it)."""
    return Policy("partner", per_minute=max(1, int(record.requests_per_minute)), burst=max(1, int(record.burst)))


@dataclass(frozen=True)
class Verdict:
    """Whether a request may pass, and what its answer says about the bucket."""

    allowed: bool
    policy: Policy
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int = 0  # refused: seconds until the next token

    def headers(self) -> dict[str, str]:
        headers = {"ratelimit-policy": self.policy.field(),
                   "ratelimit": f'"{self.policy.name}";r={self.remaining};t={self.reset}'}  # fmt: skip
        if not self.allowed:
            headers["retry-after"] = str(self.retry_after)
        return headers


def _verdict(policy: Policy, *, allowed: bool, tokens: float) -> Verdict:
    tokens = max(0.0, min(float(policy.burst), tokens))
    reset = math.ceil((policy.burst - tokens) / policy.rate)
    retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / policy.rate))
    return Verdict(allowed, policy, int(tokens), reset, retry)


@dataclass
class _Lease:
    held: int = 0  # tokens taken from the shared bucket, not yet spent here
    expires: float = 0.0
    tokens: float = 0.0  # what the shared bucket held after our last take
    at: float = 0.0
    empty_until: float = 0.0  # refused: no take before the next token is due


class Limiter:
    """Token buckets in a :class:`~reconciler.stores.journal.LimitStore`, with local leases.

    Every method may call the store: run them off the event loop (they raise what the store raises)."""

    def __init__(self, store: LimitStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def take(self, key: str, policy: Policy) -> Verdict:
        """One request: from this replica's lease, else from the shared bucket (leasing a few more)."""
        now = self.clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None:
                if lease.empty_until > now:
                    return _verdict(policy, allowed=False, tokens=self._estimate(lease, policy, now))
                if lease.held > 0 and lease.expires > now:
                    lease.held -= 1
                    return _verdict(policy, allowed=True, tokens=self._estimate(lease, policy, now))
        bucket = self.store.take(key, count=policy.lease, rate=policy.rate, burst=policy.burst, now=now)
        with self._lock:
            lease = self._leases.setdefault(key, _Lease())
            held = lease.held if lease.expires > now else 0
            if bucket.taken == 0:
                lease.held, lease.tokens, lease.at = held, bucket.tokens, now
                if held == 0:
                    lease.empty_until = now + (1.0 - bucket.tokens) / policy.rate
                    return _verdict(policy, allowed=False, tokens=bucket.tokens)
                lease.held -= 1  # another thread leased meanwhile: spend one of those
                return _verdict(policy, allowed=True, tokens=self._estimate(lease, policy, now))
            lease.held = held + bucket.taken - 1
            lease.expires, lease.tokens, lease.at, lease.empty_until = now + LEASE_SECONDS, bucket.tokens, now, 0.0
            return _verdict(policy, allowed=True, tokens=self._estimate(lease, policy, now))

    def check(self, key: str, policy: Policy) -> Verdict:
        """Whether the bucket has a token, taking none (a fresh read of the shared bucket)."""
        now = self.clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None and lease.empty_until > now:
                return _verdict(policy, allowed=False, tokens=self._estimate(lease, policy, now))
        tokens = self.store.level(key, rate=policy.rate, burst=policy.burst, now=now)
        return _verdict(policy, allowed=tokens >= 1.0, tokens=tokens)

    def spend(self, key: str, policy: Policy) -> Verdict:
        """Take exactly one token from the shared bucket, leasing none (failed authentications)."""
        now = self.clock()
        bucket = self.store.take(key, count=1, rate=policy.rate, burst=policy.burst, now=now)
        if bucket.taken == 0:
            with self._lock:
                lease = self._leases.setdefault(key, _Lease())
                lease.tokens, lease.at = bucket.tokens, now
                lease.empty_until = now + (1.0 - bucket.tokens) / policy.rate
        return _verdict(policy, allowed=bucket.taken == 1, tokens=bucket.tokens)

    @staticmethod
    def _estimate(lease: _Lease, policy: Policy, now: float) -> float:
        """What the shared bucket holds now as far as this replica knows, with its unspent lease."""
        refilled = min(float(policy.burst), lease.tokens + max(now - lease.at, 0.0) * policy.rate)
        held = lease.held if lease.expires > now else 0
        return min(float(policy.burst), refilled + held)
