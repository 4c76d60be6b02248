#!/usr/bin/env bash
# `make compose-test`: docker-compose.yml brought up for real, with Debian's podman and
# docker-compose on a base image made here (no container registry is needed), then a
# ticket drop under each protocol through the containers with one coordinator replica
# SIGKILLed mid-drop, the audit, every buyer's confirmation mail in the inbox, the web
# page from the host as a browser uses it (scripts/compose-web-check.py), and everything
# torn down. It prints how long each step took.
#
# What it needs from the machine: Debian (apt-get), root or sudo, cargo. It installs
# podman, netavark, aardvark-dns, runc, iptables, docker-compose and debootstrap, and
# keeps its own state under .stack/compose: containers.conf (runc, raised ulimits, no
# systemd), the podman API socket docker-compose talks to, the health log, the drops'
# reports. Podman runs healthchecks through systemd timers, which this machine lacks:
# a loop here runs `podman healthcheck run` for every container instead.
#
# Environment: TICKETDROP_COMPOSE_FANS (2000) and TICKETDROP_COMPOSE_SEATS (100) per
# drop; TICKETDROP_COMPOSE_KEEP=1 leaves the deployment up afterwards (and on failure);
# TICKETDROP_COMPOSE_PROTOCOLS ("2pc saga lease"); TICKETDROP_DEBIAN_MIRROR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${TICKETDROP_STACK_DIR:-$ROOT/.stack}"
STATE="$STACK/compose"
PROJECT="${TICKETDROP_COMPOSE_PROJECT:-ticketdrop-compose-test}"
BASE_IMAGE="localhost/ticketdrop-base:bookworm"
MIRROR="${TICKETDROP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
FANS="${TICKETDROP_COMPOSE_FANS:-2000}"
SEATS="${TICKETDROP_COMPOSE_SEATS:-100}"
read -r -a PROTOCOLS <<<"${TICKETDROP_COMPOSE_PROTOCOLS:-2pc saga lease}"
KEEP="${TICKETDROP_COMPOSE_KEEP:-0}"
# The coordinator is killed once this many seats of the drop are sold.
KILL_AT=$((SEATS / 5 > 0 ? SEATS / 5 : 1))
IMAGES=(service web postgres redis dynamodb node)
# The ports docker-compose.yml publishes on 127.0.0.1 (see its header).
COORDINATOR_PORTS=(
    "${TICKETDROP_COMPOSE_COORDINATOR_1_PORT:-18050}" "${TICKETDROP_COMPOSE_COORDINATOR_2_PORT:-18060}"
    "${TICKETDROP_COMPOSE_COORDINATOR_3_PORT:-18061}"
)
INVENTORY_PORT="${TICKETDROP_COMPOSE_INVENTORY_PORT:-18051}"
ORDERS_PORT="${TICKETDROP_COMPOSE_ORDERS_PORT:-18052}"
WAITING_ROOM_PORT="${TICKETDROP_COMPOSE_WAITING_ROOM_PORT:-18054}"
WEB_PORT="${TICKETDROP_COMPOSE_WEB_PORT:-18070}"
MAIL_PORT="${TICKETDROP_COMPOSE_MAIL_PORT:-18080}"
# What answers gRPC health on the host (the page's server does too).
GRPC_PORTS=("${COORDINATOR_PORTS[@]}" "$INVENTORY_PORT" "$ORDERS_PORT" "$WAITING_ROOM_PORT" "$WEB_PORT")
HOST_PORTS=("${GRPC_PORTS[@]}" "$MAIL_PORT" "${TICKETDROP_COMPOSE_SMS_PORT:-18090}")

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

log() { printf 'compose-test: %s\n' "$*"; }
die() { printf 'compose-test: FAILED: %s\n' "$*" >&2; exit 1; }
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
now() { date +%s.%N; }

# --- step timings --------------------------------------------------------------------------

STEP_NAMES=()
STEP_SECONDS=()
STEP_STARTED=
STEP_NAME=
begin() {
    STEP_NAME=$1
    STEP_STARTED=$(now)
    log "--- $STEP_NAME"
}
end() {
    local took
    took=$(awk -v a="$STEP_STARTED" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    STEP_NAMES+=("$STEP_NAME")
    STEP_SECONDS+=("$took")
    log "--- $STEP_NAME: ${took} s"
    STEP_NAME=
}
print_timings() {
    local i total=0
    ((${#STEP_NAMES[@]})) || return 0
    printf '\ncompose-test: step timings\n'
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-56s %8s s\n' "${STEP_NAMES[i]}" "${STEP_SECONDS[i]}"
        total=$(awk -v a="$total" -v b="${STEP_SECONDS[i]}" 'BEGIN { printf "%.1f", a + b }')
    done
    [[ -n $STEP_NAME ]] && printf '  %-56s %8s\n' "$STEP_NAME" "(failed)"
    printf '  %-56s %8s s\n' "total" "$total"
}

# --- podman, docker-compose and the health loop ----------------------------------------------

export CONTAINERS_CONF="$STATE/containers.conf"
export DOCKER_HOST="unix://$STATE/podman.sock"
export COMPOSE_PROJECT_NAME="$PROJECT"
# Build from the base made here, with the binaries built on this (bookworm) host.
export TICKETDROP_BASE_IMAGE="$BASE_IMAGE" TICKETDROP_RUST_IMAGE="$BASE_IMAGE" TICKETDROP_NODE_IMAGE="$BASE_IMAGE" \
    TICKETDROP_PREBUILT=1
compose() { (cd "$ROOT" && docker-compose --ansi never -p "$PROJECT" "$@"); }
container() { echo "${PROJECT}_$1_1"; }

install_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    [[ -x /usr/lib/podman/netavark ]] || missing+=(netavark)
    [[ -x /usr/lib/podman/aardvark-dns ]] || missing+=(aardvark-dns)
    command -v runc >/dev/null || missing+=(runc)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    mkdir -p "$STATE"
    # runc: the default crun refuses this machine's hybrid cgroups. cgroupfs and a file
    # event log: there is no systemd. The raised limits: PostgreSQL and the coordinators'
    # pools need more open files than podman's default allows here.
    cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
    log "podman $(podman --version | awk '{print $3}'), $(docker-compose --version | cut -d, -f1), runc $(runc --version | awk 'NR == 1 {print $3}')"
}

# A Debian bookworm made with debootstrap from the mirror apt already uses, imported as
# an image: the BASE_IMAGE of every target of the Dockerfile. Made once; kept.
make_base_image() {
    if podman image exists "$BASE_IMAGE"; then
        log "$BASE_IMAGE exists; kept (podman rmi it to make it again)"
        return
    fi
    local rootfs="$STATE/rootfs"
    as_root rm -rf "$rootfs"
    log "debootstrap --variant=minbase bookworm from $MIRROR"
    as_root debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$STATE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $STATE/debootstrap.log"
    # The sources debian:bookworm-slim has, and no downloaded lists or packages.
    as_root tee "$rootfs/etc/apt/sources.list" >/dev/null <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # Certificate authorities this host added (a TLS-inspecting proxy's, say), so the
    # builds' npm downloads trust what the host trusts.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        # (minbase has no ca-certificates yet: the images' own install picks them up.)
        as_root mkdir -p "$rootfs/usr/local/share/ca-certificates"
        as_root cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    fi
    as_root tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    as_root rm -rf "$rootfs"
    log "imported $BASE_IMAGE ($(podman image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%d MB", $1 / 1e6}'))"
}

build_binaries() {
    (cd "$ROOT" && cargo build --release -q -p coordinator -p inventory-pg -p orders-dynamo \
        -p payments -p waiting-room -p notifier -p client -p web)
    mkdir -p "$ROOT/target/image-bin"
    local bin release="${CARGO_TARGET_DIR:-$ROOT/target}/release"
    for bin in coordinator inventory-pg orders-dynamo payments waiting-room notifier ticketdrop ticketdrop-web; do
        cp "$release/$bin" "$ROOT/target/image-bin/$bin"
    done
}

build_images() {
    local target started
    for target in "${IMAGES[@]}"; do
        started=$(now)
        podman build --pull=never --target "$target" \
            --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg RUST_IMAGE="$BASE_IMAGE" --build-arg NODE_IMAGE="$BASE_IMAGE" \
            --build-arg PREBUILT=1 -t "localhost/ticketdrop-$target:local" "$ROOT" \
            >"$STATE/build-$target.log" 2>&1 ||
            { tail -20 "$STATE/build-$target.log" >&2; die "building the $target image failed; see $STATE/build-$target.log"; }
        log "image localhost/ticketdrop-$target:local built in $(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
    done
}

API_PID=
start_api() {
    rm -f "$STATE/podman.sock"
    setsid podman system service --time=0 "$DOCKER_HOST" >"$STATE/podman-api.log" 2>&1 </dev/null &
    API_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S $STATE/podman.sock ]] && curl -s --unix-socket "$STATE/podman.sock" http://d/_ping >/dev/null && return 0
        kill -0 "$API_PID" 2>/dev/null || die "podman system service exited; see $STATE/podman-api.log"
        sleep 0.1
    done
    die "the podman API socket did not answer within 10 s; see $STATE/podman-api.log"
}

# Podman runs healthchecks from systemd timers; without systemd nobody runs them and
# docker-compose waits forever on service_healthy. This loop runs each container's check
# every 2 s (in parallel) for at most two hours, and logs every change of health.
HEALTH_PID=
start_health_loop() {
    (
        declare -A last=()
        deadline=$((SECONDS + 7200))
        while ((SECONDS < deadline)); do
            for name in $(podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
                podman healthcheck run "$name" >/dev/null 2>&1 &
            done
            wait
            while read -r name health; do
                [[ -z $health || ${last[$name]:-} == "$health" ]] && continue
                printf '%s %s: %s -> %s\n' "$(date +%T)" "$name" "${last[$name]:-none}" "$health"
                last[$name]=$health
            done < <(podman ps --filter "label=com.docker.compose.project=$PROJECT" \
                --format '{{.Names}} {{.Status}}' | sed -n 's/^\([^ ]*\) .*(\([a-z]*\))$/\1 \2/p')
            sleep 2
        done
    ) >>"$STATE/health.log" 2>&1 &
    HEALTH_PID=$!
}

# Waits until every running container of the deployment with a healthcheck is healthy.
wait_all_healthy() {
    local ceiling=$1 started=$SECONDS pending
    while :; do
        pending=$(podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}} {{.Status}}' |
            grep -E '\((starting|unhealthy)\)' | awk '{print $1}' | tr '\n' ' ' || true)
        [[ -z $pending ]] && return 0
        ((SECONDS - started < ceiling)) || die "not healthy after $ceiling s: $pending(see $STATE/health.log)"
        sleep 1
    done
}

wait_healthy() {
    local name=$1 ceiling=$2 started=$SECONDS status
    while :; do
        status=$(podman inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$name" 2>/dev/null || echo missing)
        [[ $status == "running healthy" ]] && return 0
        ((SECONDS - started < ceiling)) || die "$name is not healthy after $ceiling s ($status)"
        sleep 1
    done
}

# --- the drop ------------------------------------------------------------------------------

container_ip() { podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

# A coordinator's Prometheus sample, read from the host over the container network.
metric() {
    local ip=$1 pattern=$2
    curl -s --max-time 2 "http://$ip:51050/metrics" | awk -v p="$pattern" 'index($0, p) == 1 { s += $NF } END { print s + 0 }'
}

# One drop under $protocol with coordinator-$victim SIGKILLed once $KILL_AT seats are sold
# and it has purchases in flight. The replica stays down for the rest of the drop: the
# other two take its purchases over and the fans' clients move on from it. Then it is
# started again and must become healthy.
drop_with_a_kill() {
    local protocol=$1 victim=$2 event=$3
    local out="$STATE/drop-$protocol.json" err="$STATE/drop-$protocol.log"
    local name ips=() i pid
    name=$(container "coordinator-$victim")
    for i in 1 2 3; do ips+=("$(container_ip "$(container "coordinator-$i")")"); done
    # The replica's process: stopped from here (SIGSTOP) the moment its metrics show
    # purchases in flight, so that none of them finishes in the few hundred ms `podman
    # kill` takes to start. The gauge also counts purchases already decided that are
    # still releasing their admission (most of a lease purchase's time in flight), which
    # leave nothing to take over: so while it is stopped, the log must show purchases it
    # began, owns and has not decided; if not, it goes on (SIGCONT) and the loop looks
    # again. Then `podman kill` SIGKILLs it, as an operator's kill, which the restart
    # policy leaves down (a kill from outside podman is a crash, and `restart:
    # unless-stopped` brings it straight back).
    pid=$(podman inspect -f '{{.State.Pid}}' "$name")
    ((pid > 0)) || die "coordinator-$victim has no process ($pid)"
    # A card network of 200-400 ms per call keeps purchases in flight for most of the
    # drop, so that the kill finds some on a fast machine as on a loaded one (without
    # it, a drop once sold its 100 seats before the replica had an undecided purchase).
    compose run --rm -T cli faults set --latency 200ms..400ms >/dev/null 2>>"$err" \
        || die "could not slow the card network; see $err"
    compose run --rm -T cli drop --event "$event" --protocol "$protocol" \
        --fans "$FANS" --seats "$SEATS" --email-fans --json >"$out" 2>"$err" </dev/null &
    local drop_pid=$! sold=0 in_flight=0 undecided=0 looks=0 started=$SECONDS
    while :; do
        kill -0 "$drop_pid" 2>/dev/null || die "the $protocol drop ended before coordinator-$victim was killed ($sold of $SEATS sold); see $err"
        sold=0
        for i in 0 1 2; do
            sold=$((sold + $(metric "${ips[i]}" "ticketdrop_purchases_total{protocol=\"$protocol\",outcome=\"committed\"")))
        done
        in_flight=$(metric "${ips[victim - 1]}" "ticketdrop_transactions_in_flight")
        if ((sold >= KILL_AT && in_flight > 0)); then
            kill -STOP "$pid"
            looks=$((looks + 1))
            undecided=$(podman exec "$(container postgres)" psql -X -h 127.0.0.1 -U ticketdrop -d coordinator -tAc \
                "SELECT count(*) FROM transactions WHERE event_id = '$event' AND began_by = 'coordinator-$victim'
                    AND owner = 'coordinator-$victim' AND finished_by IS NULL") || undecided=0
            ((undecided > 0)) && break
            kill -CONT "$pid"
        fi
        ((SECONDS - started < 300)) || die "the $protocol drop sold $sold seats in 300 s (waiting for $KILL_AT with purchases in flight at coordinator-$victim)"
        sleep 0.05
    done
    podman kill --signal KILL "$name" >/dev/null
    log "SIGKILLed coordinator-$victim with $in_flight purchases in flight, $undecided of them undecided in the log (looked $looks times), $sold of $SEATS seats sold"
    wait "$drop_pid" || { cat "$err" >&2; die "the $protocol drop failed; see $err"; }
    compose run --rm -T cli faults clear >/dev/null 2>>"$err" || die "could not clear the card network's faults; see $err"
    local exit_code
    exit_code=$(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$name")
    [[ $exit_code == "exited 137" ]] || die "coordinator-$victim was not down for the drop's end ($exit_code)"
    check_drop "$protocol" "$out"
    # Evidence: the killed replica's purchases were finished by the others.
    compose run --rm -T cli coordinators --event "$event" --json >"$STATE/coordinators-$protocol.json" 2>>"$err"
    python3 - "$STATE/coordinators-$protocol.json" "coordinator-$victim" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
victim = sys.argv[2]
rows = {c["instance_id"]: c for c in report["coordinators"]}
for name in sorted(rows):
    c = rows[name]
    print(f"compose-test:   {name}: began {c['began']}, finished {c['finished']}, "
          f"taken over from it {c['taken_over_from']}, taken over by it {c['took_over']}")
lost = rows[victim]["taken_over_from"]
taken = sum(c["took_over"] for c in rows.values())
given = sum(c["taken_over_from"] for c in rows.values())
if lost < 1 or taken != given:
    sys.exit(f"compose-test: FAILED: {victim} was killed with purchases in flight, yet "
             f"{lost} were taken over from it ({taken} taken over, {given} given up in all)")
EOF
    # (podman says it has no systemd for the healthcheck timer: the loop above runs it.)
    podman start "$name" >/dev/null 2>>"$STATE/podman-start.log"
    wait_healthy "$name" 120
    log "coordinator-$victim is back and healthy"
}

# The drop's report must say: every seat sold to exactly one fan, every fan a definite
# answer, nothing oversold, no error, no outcome left unknown, a clean audit.
check_drop() {
    python3 - "$1" "$2" "$FANS" "$SEATS" <<'EOF'
import json, sys
protocol, path, fans, seats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(path))
answered = sum(r[k] for k in ("sold", "sold_out", "conflicts", "declines", "aborted", "expired"))
expect = {"sold": seats, "oversold": 0, "errors": 0, "unknown": 0, "audit_violations": 0,
          "seats_unsold_while_turned_away": 0, "audit_error": None, "settle_error": None,
          "answered": fans}
got = dict(r, answered=answered)
wrong = {k: got[k] for k, v in expect.items() if got[k] != v}
print(f"compose-test:   {protocol}: sold {r['sold']}/{seats}, sold out {r['sold_out']}, "
      f"conflicts {r['conflicts']}, aborted {r['aborted']}, unknown resolved {r['unknown_resolved']}, "
      f"rejoins {r['rejoins']}, errors {r['errors']}, unknown {r['unknown']}, oversold {r['oversold']}, "
      f"audit violations {r['audit_violations']}, {r['duration_s']:.1f} s, p99 {r['p99_ms']:.0f} ms")
if wrong:
    sys.exit(f"compose-test: FAILED: {protocol} drop: expected {expect}, got {wrong}; "
             f"first error: {r.get('first_error')}")
EOF
}

audit_event() {
    local event=$1 out="$STATE/audit-$1.json"
    compose run --rm -T cli audit --event "$event" --json >"$out" 2>"$STATE/audit-$event.log" ||
        { cat "$out" "$STATE/audit-$event.log" >&2; die "ticketdrop audit --event $event failed"; }
    python3 - "$out" "$SEATS" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))
seats = int(sys.argv[2])
print(f"compose-test:   audit {a['event_id']}: sold {a['sold']}/{a['capacity']}, available {a['available']}, "
      f"held {a['held']}, oversold {a['oversold']}, unfinished {a['unfinished']}, "
      f"captured {a['captured_cents']} = confirmed {a['confirmed_cents']} cents, violations {len(a['violations'])}")
if (a["sold"], a["capacity"], a["oversold"], a["unfinished"], a["violations"]) != (seats, seats, 0, 0, []) \
        or a["captured_cents"] != a["confirmed_cents"]:
    sys.exit(f"compose-test: FAILED: audit of {a['event_id']}: {a}")
EOF
}

# Every buyer of every drop has their confirmation mail in maildev (through the outbox,
# the notifier and SMTP), read from the inbox's HTTP API on the published port.
wait_confirmations() {
    local ceiling=$1 started=$SECONDS missing
    shift
    local inbox="http://127.0.0.1:$MAIL_PORT/email"
    while :; do
        missing=$(curl -s --max-time 10 "$inbox" | python3 -c '
import json, sys
events, seats = sys.argv[1:-1], int(sys.argv[-1])
mails = json.load(sys.stdin)
buyers = {e: set() for e in events}
for mail in mails:
    for to in mail.get("to", []):
        domain = to["address"].split("@")[-1]
        if domain.endswith(".example") and domain[:-len(".example")] in buyers:
            buyers[domain[:-len(".example")]].add(to["address"])
print(" ".join(f"{e}:{len(b)}/{seats}" for e, b in buyers.items() if len(b) != seats))
print(f"compose-test:   {len(mails)} mails; buyers mailed per event: "
      + ", ".join(f"{e} {len(b)}" for e, b in buyers.items()), file=sys.stderr)
' "$@" "$SEATS" 2>"$STATE/confirmations.log") || missing="inbox unreadable"
        if [[ -z $missing ]]; then cat "$STATE/confirmations.log"; return 0; fi
        ((SECONDS - started < ceiling)) || { cat "$STATE/confirmations.log"; die "confirmations missing after $ceiling s: $missing"; }
        sleep 2
    done
}

# The web page from the host, as a browser uses it (scripts/compose-web-check.py: the page,
# GetSite over gRPC-Web, CORS and gRPC-Web health at every service it hands out, the
# events, a buyer of $1 signed in with DevLogin reading their tickets).
check_web_page() {
    local buyer_event=$1 buyer
    shift
    compose run --rm -T cli txn list --event "$buyer_event" --state committed --limit 1 --format json \
        >"$STATE/web-buyer.json" 2>"$STATE/web-buyer.log" ||
        { cat "$STATE/web-buyer.log" >&2; die "ticketdrop txn list --event $buyer_event failed"; }
    buyer=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["transactions"][0]["user_id"])' \
        "$STATE/web-buyer.json") || die "no committed purchase of $buyer_event to sign in as"
    python3 "$ROOT/scripts/compose-web-check.py" "$WEB_PORT" "${COORDINATOR_PORTS[*]}" "$INVENTORY_PORT" \
        "$ORDERS_PORT" "$WAITING_ROOM_PORT" "$buyer" "$buyer_event" "$@"
}

# --- teardown -------------------------------------------------------------------------------

show_failure() {
    log "the deployment as it was:"
    podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '  {{.Names}} {{.Status}}' || true
    local name
    for name in $(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
        printf '\n--- last lines of %s\n' "$name"
        podman logs --tail 15 "$name" 2>&1 | cut -c1-400 || true
    done
    printf '\n--- health changes (%s)\n' "$STATE/health.log"
    tail -30 "$STATE/health.log" 2>/dev/null || true
}

stop_background() {
    if [[ -n $HEALTH_PID ]]; then kill "$HEALTH_PID" 2>/dev/null || true; wait "$HEALTH_PID" 2>/dev/null || true; fi
    HEALTH_PID=
    if [[ -n $API_PID ]]; then kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; fi
    API_PID=
}

teardown() {
    compose --profile cli down -v --remove-orphans >"$STATE/down.log" 2>&1 ||
        { cat "$STATE/down.log" >&2; return 1; }
    # Nothing of the project is left: containers, volumes, the network.
    local left
    left=$(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" -q | wc -l)
    ((left == 0)) || { log "$left containers are left after down"; return 1; }
    left=$(podman volume ls --filter "label=com.docker.compose.project=$PROJECT" -q | wc -l)
    ((left == 0)) || { log "$left volumes are left after down"; return 1; }
}

on_exit() {
    local code=$?
    trap - EXIT
    if ((code != 0)); then
        [[ -S $STATE/podman.sock ]] && show_failure
        if [[ $KEEP != 1 && -n $API_PID ]]; then
            log "tearing the deployment down (TICKETDROP_COMPOSE_KEEP=1 keeps it)"
            teardown || true
        fi
    fi
    [[ $KEEP == 1 ]] || stop_background
    print_timings
    ((code == 0)) && log "passed" || log "failed"
    exit "$code"
}

# --- the test --------------------------------------------------------------------------------

main() {
    trap on_exit EXIT
    begin "install podman, docker-compose, debootstrap"
    install_tools
    end

    begin "base image (debootstrap + podman import)"
    make_base_image
    end

    begin "release binaries (cargo build --release)"
    build_binaries
    end

    begin "images (${IMAGES[*]})"
    build_images
    end

    begin "up: every container healthy"
    local port
    for port in "${HOST_PORTS[@]}"; do
        ! port_open "$port" || die "host port $port is taken; docker-compose.yml publishes it (see TICKETDROP_COMPOSE_*_PORT)"
    done
    start_api
    : >"$STATE/health.log"
    compose --profile cli down -v --remove-orphans >/dev/null 2>&1 || true
    start_health_loop
    timeout 600 bash -c "cd '$ROOT' && docker-compose --ansi never -p '$PROJECT' up -d --no-build" \
        >"$STATE/up.log" 2>&1 || { cat "$STATE/up.log" >&2; die "docker-compose up failed"; }
    wait_all_healthy 300
    podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '  {{.Names}} {{.Status}}'
    # The published entry points answer from the host too.
    for port in "${GRPC_PORTS[@]}"; do
        "${CARGO_TARGET_DIR:-$ROOT/target}/release/ticketdrop" health --endpoint "http://127.0.0.1:$port" | sed 's/^/  host: /' ||
            die "127.0.0.1:$port does not answer SERVING from the host"
    done
    end

    local event="compose-$(date +%s)" protocol victim=1
    for protocol in "${PROTOCOLS[@]}"; do
        begin "drop $protocol: $FANS fans, $SEATS seats, coordinator-$victim killed"
        drop_with_a_kill "$protocol" "$victim" "$event-$protocol"
        end
        victim=$((victim % 3 + 1))
    done

    begin "audit (${PROTOCOLS[*]})"
    for protocol in "${PROTOCOLS[@]}"; do
        audit_event "$event-$protocol"
    done
    end

    begin "confirmations: every buyer's mail in maildev"
    local events=()
    for protocol in "${PROTOCOLS[@]}"; do events+=("$event-$protocol"); done
    wait_confirmations 180 "${events[@]}"
    end

    begin "web page from the host (GET /, GetSite, gRPC-Web)"
    check_web_page "${events[0]}" "${events[@]}"
    end

    if [[ $KEEP == 1 ]]; then
        log "TICKETDROP_COMPOSE_KEEP=1: the deployment stays up (project $PROJECT; DOCKER_HOST=$DOCKER_HOST CONTAINERS_CONF=$CONTAINERS_CONF)"
        return
    fi
    begin "down (containers, volumes, network)"
    teardown || die "docker-compose down left parts of the deployment behind"
    stop_background
    end
}

main "$@"
