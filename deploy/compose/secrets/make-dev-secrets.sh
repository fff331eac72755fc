#!/usr/bin/env bash
# Make every file deploy/compose/compose.yaml reads from ./secrets, for a trial or a test of the stack:
# a throwaway CA and the three Kafka nodes' certificates, the cluster id, random passwords, the pgpass line
# and the gate's Ed25519 key with its public key registry. For production, make the same files from your
# own CA and password store (README.md beside this script lists them). Refuses to overwrite anything.
#
#   deploy/compose/secrets/make-dev-secrets.sh [DIR]      # DIR defaults to this script's folder
#   MASH=/path/to/mash ...                                # the `mash` to run `mash keys new` with
set -euo pipefail

dir=${1:-$(dirname "$0")}
mash=${MASH:-mash}
days=${MASH_DEV_CERT_DAYS:-90}
mkdir -p "$dir" && chmod 0700 "$dir"
dir=$(cd "$dir" && pwd)
for f in kafka-ca.pem kafka-1.pem kafka-2.pem kafka-3.pem kafka-cluster-id kafka-admin-password \
         kafka-gate-password postgres-password mash-pgpass mash-gate.key.pem key-registry.toml; do
  [[ ! -e "$dir/$f" ]] || { echo "make-dev-secrets: $dir/$f exists; remove the old files first" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "make-dev-secrets: needs openssl" >&2; exit 3; }
command -v "$mash" >/dev/null || { echo "make-dev-secrets: needs mash (pip install the wheel, or MASH=...)" >&2; exit 3; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

# The CA (EC P-256) and one certificate per node: CN=broker-N (principal User:broker, server.properties'
# mapping rule), SAN kafka-N (the nodes check each other's host names), server and client use.
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days "$days" \
  -subj "/CN=MASH Broker compose CA" -keyout "$work/ca.key" -out "$dir/kafka-ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
for n in 1 2 3; do
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=broker-$n" \
    -keyout "$work/kafka-$n.key" -out "$work/kafka-$n.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyAgreement" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=DNS:kafka-$n,DNS:localhost" > "$work/kafka-$n.ext"
  openssl x509 -req -in "$work/kafka-$n.csr" -CA "$dir/kafka-ca.pem" -CAkey "$work/ca.key" -CAserial "$work/ca.srl" -CAcreateserial \
    -days "$days" -sha256 -extfile "$work/kafka-$n.ext" -out "$work/kafka-$n.crt" 2>/dev/null
  # What ssl.keystore.type=PEM reads: the unencrypted PKCS#8 key, then the chain.
  openssl pkcs8 -topk8 -nocrypt -in "$work/kafka-$n.key" > "$dir/kafka-$n.pem"
  cat "$work/kafka-$n.crt" "$dir/kafka-ca.pem" >> "$dir/kafka-$n.pem"
done

# 16 random bytes, URL-safe base64 without padding: what `kafka-storage.sh random-uuid` prints.
openssl rand 16 | base64 | tr '+/' '-_' | tr -d '=\n' > "$dir/kafka-cluster-id"
# Hex passwords: nothing for SCRAM's [name=...,password=...] syntax or a pgpass line to trip on.
openssl rand -hex 24 > "$dir/kafka-admin-password"
openssl rand -hex 24 > "$dir/kafka-gate-password"
pg=$(openssl rand -hex 24)
printf '%s\n' "$pg" > "$dir/postgres-password"
printf 'postgres:5432:mash:mash:%s\n' "$pg" > "$dir/mash-pgpass"

# The gate's signing key and the registry of public keys the gate verifies with (`mash keys new`).
MASH_DATA_DIR="$work/mash" MASH_LOG_LEVEL=WARNING "$mash" keys new mash:gate > /dev/null
cp "$work/mash/keys/mash+gate.key.pem" "$dir/mash-gate.key.pem"
cp "$work/mash/keys/registry.toml" "$dir/key-registry.toml"

# Compose bind-mounts these files as they are (it ignores a secret's uid and mode), so each container's
# user must be able to read them: Kafka runs as uid 1000, mash as 10001, PostgreSQL reads its file as root.
# The folder (0700) keeps other users of this host out; the files are readable inside it. asyncpg ignores
# a pgpass file that its group or others can read, so mash-pgpass is 0600 and must belong to uid 10001.
chmod 0444 "$dir"/kafka-* "$dir"/postgres-password "$dir"/mash-gate.key.pem "$dir"/key-registry.toml
chmod 0600 "$dir/mash-pgpass"
if [[ $(id -u) == 0 ]]; then
  chown 10001:10001 "$dir/mash-pgpass"
else
  echo "make-dev-secrets: now run: sudo chown 10001:10001 $dir/mash-pgpass" >&2
fi
echo "make-dev-secrets: made the secret files in $dir"
