#!/bin/sh
# The Kubernetes setup job's first step: makes the mesh's keys once and stores them as
# the Secret $TICKETDROP_KEYS_SECRET (default ticketdrop-keys) through the API server,
# with the job's service account (allowed to get and create Secrets, nothing else).
# Idempotent: an existing Secret is kept, so a rerun or a second job changes nothing,
# and a lost race (409) means another job stored its keys first.
#
# The Secret holds the two token key pairs `ticketdrop keys` makes (users.pem,
# users.pub.pem, mesh.pem, mesh.pub.pem) and two random shared keys (admission-key for
# the waiting room's admission tokens, ticket-key for the tickets orders-dynamo signs).
# Each Deployment mounts only the items it needs.
set -eu

sa=/var/run/secrets/kubernetes.io/serviceaccount
api="https://${KUBERNETES_SERVICE_HOST:-kubernetes.default.svc}:${KUBERNETES_SERVICE_PORT:-443}"
namespace=$(cat "$sa/namespace")
secret="${TICKETDROP_KEYS_SECRET:-ticketdrop-keys}"
url="$api/api/v1/namespaces/$namespace/secrets"

call() {
    curl -sS --max-time 30 --retry 5 --retry-connrefused --cacert "$sa/ca.crt" \
        -H "Authorization: Bearer $(cat "$sa/token")" "$@"
}

status=$(call -o /dev/null -w '%{http_code}' "$url/$secret")
case $status in
    200) echo "keys-job: secret $secret exists; keeping it"; exit 0 ;;
    404) ;;
    *) echo "keys-job: reading secret $secret answered HTTP $status" >&2; exit 1 ;;
esac

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
TICKETDROP_AUTH_DIR="$dir/auth" ticketdrop keys
head -c 32 /dev/urandom | base64 -w0 >"$dir/admission-key"
head -c 32 /dev/urandom | base64 -w0 >"$dir/ticket-key"

b64() { base64 -w0 "$1"; }
cat >"$dir/secret.json" <<JSON
{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
 "metadata": {"name": "$secret", "labels": {"app.kubernetes.io/part-of": "ticketdrop"}},
 "data": {
   "users.pem": "$(b64 "$dir/auth/users.pem")",
   "users.pub.pem": "$(b64 "$dir/auth/users.pub.pem")",
   "mesh.pem": "$(b64 "$dir/auth/mesh.pem")",
   "mesh.pub.pem": "$(b64 "$dir/auth/mesh.pub.pem")",
   "admission-key": "$(b64 "$dir/admission-key")",
   "ticket-key": "$(b64 "$dir/ticket-key")"}}
JSON
status=$(call -o "$dir/answer" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "@$dir/secret.json" "$url")
case $status in
    201) echo "keys-job: created secret $secret" ;;
    409) echo "keys-job: secret $secret was created by another job meanwhile; keeping it" ;;
    *) echo "keys-job: creating secret $secret answered HTTP $status: $(cat "$dir/answer")" >&2; exit 1 ;;
esac
