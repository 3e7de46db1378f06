"""The partner gateway (DESIGN §7): OAuth2 client credentials, the handshake, scope enforcement."""
