"""Webhooks (DESIGN §8): publishing events, shaping and signing payloads, the dispatcher."""
