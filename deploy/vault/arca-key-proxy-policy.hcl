# The key proxy's Vault policy: wrap, unwrap and rewrap master keys with the transit key, read the
# key's settings (readiness checks that it exists and is derived). Nothing else: not `create` on
# the encrypt path (Vault would create a missing key on first use), not key export or deletion.
path "transit/encrypt/arca-kek" {
  capabilities = ["update"]
}
path "transit/decrypt/arca-kek" {
  capabilities = ["update"]
}
path "transit/rewrap/arca-kek" {
  capabilities = ["update"]
}
path "transit/keys/arca-kek" {
  capabilities = ["read"]
}
