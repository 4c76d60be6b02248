# One image with every service and the CLI; docker-compose.yml picks the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
        -p coordinator -p inventory-pg -p orders-dynamo -p payments -p waiting-room -p client \
 && mkdir /out \
 && cp target/release/coordinator target/release/inventory-pg target/release/orders-dynamo \
       target/release/payments target/release/waiting-room target/release/ticketdrop /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home ticketdrop
COPY --from=build /out/ /usr/local/bin/
USER ticketdrop
ENV TICKETDROP_LOG_FORMAT=json
