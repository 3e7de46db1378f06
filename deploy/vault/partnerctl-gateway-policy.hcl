# Vault policy of the partnerctl gateway: reads credential records and verifies secrets through
# Transit; writes only its own token-signing key on first start.
#
#   vault policy write partnerctl-gateway deploy/vault/partnerctl-gateway-policy.hcl

path "secret/data/scp-partners/*" {
  capabilities = ["read"]
}
path "secret/data/scp-partners/_installation/*" {
  capabilities = ["create", "read"]
}
path "secret/metadata/scp-partners/*" {
  capabilities = ["read"]
}
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
path "transit/hmac/scp-partners-migrated-*" {
  capabilities = ["update"]
}
path "transit/encrypt/scp-partners" {
  capabilities = ["update"]
}
path "transit/decrypt/scp-partners" {
  capabilities = ["update"]
}
