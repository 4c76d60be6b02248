#!/bin/sh
# PostgreSQL for the container deployment: on first start, initdb in $PGDATA with what
# the mesh needs (prepared transactions for 2pc, connections for every pool of several
# coordinators) and the four databases; then the server in the foreground.
# fsync, full_page_writes and synchronous_commit keep their defaults (on): a committed
# decision in the coordinator's log must survive a crash of this container.
set -eu

: "${PGDATA:?PGDATA must be set}"
USER_NAME="${TICKETDROP_PG_USER:-ticketdrop}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "postgres-entrypoint: initdb in $PGDATA"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    # Trust on the container network: the deployment's own network only, no published
    # port. A managed PostgreSQL with passwords replaces this outside a single host.
    initdb -D "$PGDATA" -U "$USER_NAME" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<CONF
# --- TicketDrop ---
listen_addresses = '*'
max_connections = ${TICKETDROP_PG_MAX_CONNECTIONS:-500}
# 2pc: one slot per purchase in doubt at once.
max_prepared_transactions = ${TICKETDROP_PG_MAX_PREPARED_TRANSACTIONS:-500}
shared_buffers = ${TICKETDROP_PG_SHARED_BUFFERS:-256MB}
CONF
    echo "host all all all trust" >>"$PGDATA/pg_hba.conf"
    # The databases, created on a server that listens on its socket only, so nobody
    # connects before they exist (the healthcheck asks for the last one over TCP).
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -U "$USER_NAME" -d postgres \
        -f /usr/local/share/ticketdrop/postgres-init.sql
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres-entrypoint: databases created"
fi

exec postgres -D "$PGDATA" "$@"
