"""``make bench``: performance figures, each a ratio against a baseline measured side by side."""
