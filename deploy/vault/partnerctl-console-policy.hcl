# Vault policy of the partnerctl console: reads the credential records (client ids, generations,
# times, states: the evidence of §12) and checks their seals through Transit HMAC. Nothing else: no
# encrypt or decrypt, so the webhook signing secrets and pending pickups in those records stay
# ciphertext to it, and no write anywhere. deploy/ gives the console a ServiceAccount and Vault role
# of its own (partnerctl-console), with this policy only.
#
#   vault policy write partnerctl-console deploy/vault/partnerctl-console-policy.hcl

path "secret/data/scp-partners/*" {
  capabilities = ["read"]
}
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
# A record counts only if its seal (a keyed hash over it) holds: a hand edit shows as drift.
path "transit/hmac/scp-partners" {
  capabilities = ["update"]
}
path "transit/hmac/scp-partners/*" {
  capabilities = ["update"]
}
path "transit/hmac/scp-partners-migrated-*" {
  capabilities = ["update"]
}
