"""Webhooks (DESIGN §8): publishing events, shaping and signing payloads, delivering them.

    events.py      checking a published event, fan-out to subscriptions, shaping per partner
    messages.py    Standard Webhooks signatures and delivery outcomes
    dispatcher.py  the delivery worker: retries, Retry-After, 410, LOG-01, held deliveries, the replay lane
    slots.py       sending slots where live deliveries go before replayed ones
    sender.py      HTTP delivery with SSRF checks at send time (httpx): pings and the dispatcher's transport
    destinations.py  the SSRF check at connect time (every resolved address), also for jwksUri fetches
    alerts.py      which alerts (DESIGN §12) the audit chain and an apply call for, de-duplicated, as JSON
    notify.py      posting alerts to --notify URLs: bounded queues, retries, SSRF checks (httpx)
"""

from __future__ import annotations

from reconciler.webhooks.dispatcher import Dispatcher
from reconciler.webhooks.events import EventError, Shaper, publish
from reconciler.webhooks.messages import Delivery, sign

__all__ = ["Delivery", "Dispatcher", "EventError", "Shaper", "publish", "sign"]
