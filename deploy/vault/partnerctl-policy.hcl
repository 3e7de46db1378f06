# Vault policy of the partnerctl reconciler (least privilege; default names: KV v2 at secret/,
# prefix scp-partners, Transit at transit/ with key scp-partners). Adjust the paths if you change them.
#
#   vault policy write partnerctl deploy/vault/partnerctl-policy.hcl

# Credential records, the audit outbox, installation secrets and wrap-token index. Never delete:
# partnerctl revokes by writing, so an operator's accident cannot erase history through it.
path "secret/data/scp-partners/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/scp-partners" {
  capabilities = ["list"]
}
path "secret/metadata/scp-partners/*" {
  capabilities = ["read", "list"]
}

# Keyed hashes (HMAC-SHA-256) and encryption with the partnerctl key; the key itself never leaves Vault.
# Settings (never key material) of the key, checked at start so a missing key is named.
path "transit/keys/scp-partners" {
  capabilities = ["read"]
}
path "transit/hmac/scp-partners" {
  capabilities = ["update"]
}
path "transit/hmac/scp-partners/*" {
  capabilities = ["update"]
}
path "transit/encrypt/scp-partners" {
  capabilities = ["update"]
}
path "transit/decrypt/scp-partners" {
  capabilities = ["update"]
}
# Hashes of credentials migrated from an embedded installation (partnerctl secrets migrate).
path "transit/hmac/scp-partners-migrated-*" {
  capabilities = ["update"]
}

# One-time delivery by response wrapping.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
