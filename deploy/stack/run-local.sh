#!/usr/bin/env bash
# Shipyard's shared stack on one machine, for a person to try: STACK_REPLICAS replicas of
# `shipyard serve --deployment` behind nginx, on one PostgreSQL database (metadata), one S3
# bucket (artifacts and the prediction log) and one Redis (the prediction cache in db 0, the
# feature store's online store in db 1).
#
#   deploy/stack/run-local.sh            # Ctrl+C stops every process it started
#
# Settings (environment; defaults in brackets):
#   SHIPYARD_DB               [postgresql+psycopg://postgres@127.0.0.1:5432/shipyard]
#   SHIPYARD_ARTIFACTS        [s3://shipyard/artifacts]
#   SHIPYARD_S3_ENDPOINT_URL  [http://127.0.0.1:5000] an S3 API; when nothing answers there,
#                             moto_server is started on it (a local S3 API, data in memory)
#   SHIPYARD_ONLINE_STORE     [redis://127.0.0.1:6379/1] online features of feature-backed
#                             models, shared by every replica (run `shipyard features
#                             materialize` with the same setting)
#   STACK_CACHE               [redis://127.0.0.1:6379/0]
#   STACK_DEPLOYMENT          [web] must exist: shipyard deploy web --model iris:1
#   STACK_REPLICAS            [3]   replicas listen on STACK_PORT+1, STACK_PORT+2, ...
#   STACK_PORT                [8080] nginx
#   STACK_POLL_INTERVAL       [2]   seconds between a replica's checks for a changed deployment
#   STACK_DIR                 [./shipyard-stack] nginx.conf, prometheus.yml, logs
# Needs: nginx, and `shipyard` (with its s3 and redis extras) on PATH.
# The configuration files come from `python -m shipyard.deploy.stack`, which the
# end-to-end test (tests/deploy/test_stack.py) uses too.
set -euo pipefail

export SHIPYARD_DB="${SHIPYARD_DB:-postgresql+psycopg://postgres@127.0.0.1:5432/shipyard}"
export SHIPYARD_ARTIFACTS="${SHIPYARD_ARTIFACTS:-s3://shipyard/artifacts}"
export SHIPYARD_S3_ENDPOINT_URL="${SHIPYARD_S3_ENDPOINT_URL:-http://127.0.0.1:5000}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
# Not the cache's db: emptying the cache (FLUSHDB) must not drop the materialized features.
export SHIPYARD_ONLINE_STORE="${SHIPYARD_ONLINE_STORE:-redis://127.0.0.1:6379/1}"
CACHE="${STACK_CACHE:-redis://127.0.0.1:6379/0}"
DEPLOYMENT="${STACK_DEPLOYMENT:-web}"
REPLICAS="${STACK_REPLICAS:-3}"
PORT="${STACK_PORT:-8080}"
POLL="${STACK_POLL_INTERVAL:-2}"
DIR="$(mkdir -p "${STACK_DIR:-./shipyard-stack}" && cd "${STACK_DIR:-./shipyard-stack}" && pwd)"
PYTHON="${PYTHON:-python}"
SHIPYARD="${SHIPYARD:-shipyard}"
HERE="$(cd "$(dirname "$0")" && pwd)"

# True when something answers HTTP at $1 (any status: an S3 API may answer 403 to /).
answers() {
  "$PYTHON" - "$1" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

pids=()
stop() {
  trap - EXIT INT TERM
  ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# Checks the shared settings (PostgreSQL, s3://) and writes nginx.conf + prometheus.yml.
replica_args=()
for ((i = 1; i <= REPLICAS; i++)); do replica_args+=(--replica "127.0.0.1:$((PORT + i))"); done
write_files() {
  "$PYTHON" -m shipyard.deploy.stack write --check-settings --out "$DIR" \
    --listen "127.0.0.1:$PORT" "${replica_args[@]}" \
    --rules "$HERE/../prometheus/alerts.yml" --rules "$HERE/../prometheus/rollout-alerts.yml" "$@"
}
write_files >/dev/null

if ! answers "$SHIPYARD_S3_ENDPOINT_URL"; then
  hostport="${SHIPYARD_S3_ENDPOINT_URL#http://}"
  echo "No S3 API at $SHIPYARD_S3_ENDPOINT_URL: starting moto_server there (data in memory)."
  moto_server -H "${hostport%:*}" -p "${hostport##*:}" >"$DIR/s3.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    answers "$SHIPYARD_S3_ENDPOINT_URL" && break
    sleep 0.1
  done
fi
"$PYTHON" -m shipyard.deploy.stack bucket "$SHIPYARD_ARTIFACTS"

if ! "$SHIPYARD" deploy status "$DEPLOYMENT" >/dev/null 2>&1; then
  echo "No deployment named $DEPLOYMENT in $SHIPYARD_DB. Register a model and create it first:" >&2
  echo "  shipyard deploy $DEPLOYMENT --model MODEL:VERSION" >&2
  exit 1
fi

for ((i = 1; i <= REPLICAS; i++)); do
  "$SHIPYARD" serve --deployment "$DEPLOYMENT" --host 127.0.0.1 --port "$((PORT + i))" \
    --poll-interval "$POLL" --cache "$CACHE" >"$DIR/replica-$((PORT + i)).log" 2>&1 &
  pids+=($!)
done
for ((i = 1; i <= REPLICAS; i++)); do
  until "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "http://127.0.0.1:$((PORT + i))/ready" 2>/dev/null; do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "A process exited; see the logs in $DIR." >&2; exit 1; }
    done
    sleep 0.5
  done
done

"$(command -v nginx || echo /usr/sbin/nginx)" -p "$DIR" -c "$DIR/nginx.conf" -e stderr &
pids+=($!)
echo "Deployment $DEPLOYMENT: $REPLICAS replicas behind http://127.0.0.1:$PORT (nginx)."
echo "Logs, nginx.conf and prometheus.yml (for: prometheus --config.file=...) in $DIR."
echo "Ctrl+C stops the stack."
# One process ending (a replica that crashed, nginx) stops the whole stack, loudly.
set +e
wait -n "${pids[@]}"
status=$?
echo "A process of the stack exited (status $status); stopping the rest." >&2
exit "$status"
