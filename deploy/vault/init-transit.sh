#!/bin/sh
# Prepares Vault for the key proxy (idempotent): transit engine, a derived AES-256-GCM key that is
# not exportable, the least-privilege policy, and a renewable token for the proxy written to the
# shared secrets volume (mode 0600, owned by the proxy's uid 1000).
set -eu
vault secrets list -format=json | grep -q '"transit/"' || vault secrets enable transit
vault read transit/keys/arca-kek >/dev/null 2>&1 || \
  vault write -f transit/keys/arca-kek type=aes256-gcm96 derived=true exportable=false allow_plaintext_backup=false
vault policy write arca-key-proxy /vault-config/arca-key-proxy-policy.hcl
umask 077
vault token create -policy=arca-key-proxy -period=768h -orphan -field=token > /secrets/vault-token
chown 1000:1000 /secrets/vault-token
echo "vault-init: transit key arca-kek ready; key proxy token written"
