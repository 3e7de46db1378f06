# Extra rights for a one-off `partnerctl secrets migrate` (with partnerctl-policy.hcl): importing the
# embedded installation's hashing key into Transit. Give it to the operator's token, not the reconciler.
#
#   vault policy write partnerctl-migrate deploy/vault/partnerctl-migrate-policy.hcl
#   vault token create -policy=partnerctl -policy=partnerctl-migrate -ttl=1h

path "transit/wrapping_key" {
  capabilities = ["read"]
}
path "transit/keys/scp-partners-migrated-*" {
  capabilities = ["read", "update"]
}
