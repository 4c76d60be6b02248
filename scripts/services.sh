#!/usr/bin/env bash
# The TicketDrop services running in the background on their fixed local ports,
# with pid files and logs under .stack/services. `up` twice is harmless; `down` stops
# only the processes whose pid files it wrote.
#
#   scripts/services.sh up | down | status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${TICKETDROP_STACK_DIR:-$ROOT/.stack}"
DIR="$STACK/services"
PROFILE="${TICKETDROP_PROFILE:-release}"
BIN="$ROOT/target/$PROFILE"

# service:port, started in this order (the coordinator last: it calls the others).
SERVICES=(inventory-pg:50051 orders-dynamo:50052 payments:50053 waiting-room:50054 notifier:50055 coordinator:50050)

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

log() { printf 'services: %s\n' "$*"; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }
build() {
    local flag=()
    [[ $PROFILE == release ]] && flag=(--release)
    log "building the services ($PROFILE)"
    (cd "$ROOT" && cargo build "${flag[@]}" -q -p inventory-pg -p orders-dynamo -p payments -p waiting-room -p notifier -p coordinator -p client)
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
    local entry name port
    for entry in "${SERVICES[@]}"; do
        name=${entry%%:*} port=${entry##*:}
        if pid_alive "$DIR/$name.pid" "/$name"; then
            log "$name already running on 127.0.0.1:$port"
            continue
        fi
        if port_open "$port"; then
            die "port $port (for $name) is taken by another process; stop it first"
        fi
        setsid "$BIN/$name" >"$DIR/$name.log" 2>&1 </dev/null &
        echo $! >"$DIR/$name.pid"
        log "started $name on 127.0.0.1:$port (log: $DIR/$name.log)"
    done
    "$BIN/ticketdrop" health --wait 60 >/dev/null ||
        die "not every service is SERVING; see the logs in $DIR"
    log "all ${#SERVICES[@]} services are SERVING"
}

down() {
    local entry name i
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        entry=${SERVICES[i]} name=${entry%%:*}
        if stop_pid "$DIR/$name.pid" "/$name"; then log "stopped $name"; fi
    done
}

status() {
    local entry name port
    for entry in "${SERVICES[@]}"; do
        name=${entry%%:*} port=${entry##*:}
        if pid_alive "$DIR/$name.pid" "/$name"; then
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
