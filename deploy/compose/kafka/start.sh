#!/usr/bin/env bash
# Start one Apache Kafka node of the compose stack. On first start (no meta.properties yet) its storage is
# formatted with the cluster id the three nodes share and the SCRAM-SHA-512 credentials of the admin user
# and the gate's user, read from the operator's secret files; later starts go straight to the server.
# Kafka's own image formats without --add-scram, hence this script (deploy/README.md).
set -euo pipefail

config=/etc/kafka/mash/server.properties
data=/var/lib/kafka/data

secret() {  # the first line of /run/secrets/NAME, without its newline
  local value
  IFS= read -r value < "/run/secrets/$1" || true
  [[ -n "$value" ]] || { echo "start.sh: /run/secrets/$1 is empty (deploy/compose/secrets/README.md)" >&2; exit 2; }
  printf '%s' "$value"
}

if [[ ! -f "$data/meta.properties" ]]; then
  echo "start.sh: formatting $data for cluster $(secret kafka_cluster_id)"
  /opt/kafka/bin/kafka-storage.sh format --config "$config" --cluster-id "$(secret kafka_cluster_id)" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$(secret kafka_admin_password)]" \
    --add-scram "SCRAM-SHA-512=[name=mash-gate,password=$(secret kafka_gate_password)]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
