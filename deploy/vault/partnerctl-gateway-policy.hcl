# Vault policy of the partnerctl gateway: reads credential records and verifies secrets through
# Transit; writes only its own token-signing key on first start. Enough on its own: deploy/ gives the
# gateway a ServiceAccount and Vault role of its own (partnerctl-gateway), with this policy only.
#
#   vault policy write partnerctl-gateway deploy/vault/partnerctl-gateway-policy.hcl

path "secret/data/scp-partners/*" {
  capabilities = ["read"]
}
path "secret/data/scp-partners/_installation/*" {
  capabilities = ["create", "read"]
}
# Listing the records: recording a handshake or a sync derives the partner's status, which
# reads every partner's webhook secret names.
path "secret/metadata/scp-partners" {
  capabilities = ["list"]
}
path "secret/metadata/scp-partners/*" {
  capabilities = ["read", "list"]
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
