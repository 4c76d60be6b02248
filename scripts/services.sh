#!/usr/bin/env bash
# The TicketDrop services running in the background on their fixed local ports,
# with pid files and logs under .stack/services. `up` twice is harmless; `down` stops
# only the processes whose pid files it wrote.
#
# The coordinator runs as TICKETDROP_COORDINATORS processes (default 2) sharing one log,
# as production would: the first on 127.0.0.1:50050 (coordinator.pid), the others on
# 50060, 50061, ... (coordinator-2.pid, coordinator-3.pid, ...). Their endpoints go to
# .stack/services/coordinators, where `ticketdrop` (run from the repo) finds them.
#
#   scripts/services.sh up | down | status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${TICKETDROP_STACK_DIR:-$ROOT/.stack}"
DIR="$STACK/services"
PROFILE="${TICKETDROP_PROFILE:-release}"
BIN="$ROOT/target/$PROFILE"

# service:port, started in this order (the coordinators after the participants: they
# call them; the web page's server last, at http://127.0.0.1:50080/).
SERVICES=(inventory-pg:50051 orders-dynamo:50052 payments:50053 waiting-room:50054 notifier:50055 coordinator:50050)
WEB=ticketdrop-web:50080
WEB_METRICS_PORT=52080
COORDINATORS="${TICKETDROP_COORDINATORS:-2}"
[[ $COORDINATORS =~ ^[1-9][0-9]?$ ]] || { echo "services: TICKETDROP_COORDINATORS must be 1 to 99" >&2; exit 1; }
for ((n = 2; n <= COORDINATORS; n++)); do
    SERVICES+=("coordinator-$n:$((50058 + n))")
done
SERVICES+=("$WEB")

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

log() { printf 'services: %s\n' "$*"; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }
build() {
    local flag=()
    [[ $PROFILE == release ]] && flag=(--release)
    log "building the services ($PROFILE)"
    (cd "$ROOT" && cargo build "${flag[@]}" -q -p inventory-pg -p orders-dynamo -p payments -p waiting-room -p notifier -p coordinator -p client -p web)
    log "building the web page (web/app)"
    (cd "$ROOT/web/app" && npm run --silent build >/dev/null)
}

up() {
    mkdir -p "$DIR"
    build
    # The token keys: the services verify with the public halves, the coordinator and the
    # waiting room sign their own calls with the mesh key, `ticketdrop login` with users.
    export TICKETDROP_AUTH_DIR="$STACK/auth"
    "$BIN/ticketdrop" keys | sed 's/^/services: /'
    # Every fan of a local drop comes from 127.0.0.1: a per-address limit would throttle
    # the load generator, not an abuser. Per-user limits stay on.
    export TICKETDROP_RATE_LIMIT_ADDRESS_PER_SEC="${TICKETDROP_RATE_LIMIT_ADDRESS_PER_SEC:-0}"
    # The page signs fans in with development tokens, as `ticketdrop login` does: this
    # is a development stack.
    export TICKETDROP_WEB_DEV_LOGIN=true TICKETDROP_WEB_SITE_DIR="$ROOT/web/app/dist"
    local entry name port binary endpoints=()
    # Every coordinator's endpoint, known before anything starts: the waiting room asks
    # them whether a purchase whose lease passed has ended.
    for entry in "${SERVICES[@]}"; do
        name=${entry%%:*} port=${entry##*:}
        [[ ${name%%-[0-9]*} == coordinator ]] && endpoints+=("http://127.0.0.1:$port")
    done
    (IFS=,; echo "${endpoints[*]}") >"$DIR/coordinators"
    export TICKETDROP_COORDINATOR_ENDPOINT
    TICKETDROP_COORDINATOR_ENDPOINT=$(<"$DIR/coordinators")
    for entry in "${SERVICES[@]}"; do
        name=${entry%%:*} port=${entry##*:} binary=${name%%-[0-9]*}
        if pid_alive "$DIR/$name.pid" "/$binary"; then
            log "$name already running on 127.0.0.1:$port"
            continue
        fi
        if port_open "$port"; then
            die "port $port (for $name) is taken by another process; stop it first"
        fi
        if [[ $binary == coordinator ]]; then
            TICKETDROP_COORDINATOR_LISTEN="127.0.0.1:$port" \
                setsid "$BIN/$binary" >"$DIR/$name.log" 2>&1 </dev/null &
        elif [[ $binary == ticketdrop-web ]]; then
            # Its metrics may not take port + 1000 (51080): the stack's mail inbox has it.
            TICKETDROP_METRICS_LISTEN="127.0.0.1:$WEB_METRICS_PORT" \
                setsid "$BIN/$binary" >"$DIR/$name.log" 2>&1 </dev/null &
        else
            setsid "$BIN/$binary" >"$DIR/$name.log" 2>&1 </dev/null &
        fi
        echo $! >"$DIR/$name.pid"
        log "started $name on 127.0.0.1:$port (log: $DIR/$name.log)"
    done
    "$BIN/ticketdrop" health --wait 60 >/dev/null ||
        die "not every service is SERVING; see the logs in $DIR"
    local tries
    for ((tries = 0; tries < 120; tries++)); do port_open "${WEB##*:}" && break; sleep 0.5; done
    port_open "${WEB##*:}" || die "the web page's server did not open port ${WEB##*:}; see $DIR/${WEB%%:*}.log"
    log "all ${#SERVICES[@]} services are SERVING ($COORDINATORS coordinators on one log: $TICKETDROP_COORDINATOR_ENDPOINT)"
    log "the fans' page and the operator's live view: http://127.0.0.1:${WEB##*:}/"
}

down() {
    local entry name i file
    # Every coordinator this script started, however many TICKETDROP_COORDINATORS says now.
    for file in "$DIR"/coordinator-*.pid; do
        [[ -e $file ]] || continue
        name=$(basename "$file" .pid)
        if stop_pid "$file" "/coordinator"; then log "stopped $name"; fi
    done
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        entry=${SERVICES[i]} name=${entry%%:*}
        if stop_pid "$DIR/$name.pid" "/${name%%-[0-9]*}"; then log "stopped $name"; fi
    done
    rm -f "$DIR/coordinators"
}

status() {
    local entry name port
    for entry in "${SERVICES[@]}"; do
        name=${entry%%:*} port=${entry##*:}
        if pid_alive "$DIR/$name.pid" "/${name%%-[0-9]*}"; then
            echo "$name  up    127.0.0.1:$port  pid $(<"$DIR/$name.pid")"
        else
            echo "$name  down  127.0.0.1:$port"
        fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
