#!/usr/bin/env python3
"""docs/capacity.md from a bench run: what 500,000 fans and 10,000 bookings a second need.

    python3 scripts/capacity.py target/bench.json > docs/capacity.md

Every figure is derived from a measured cost of that run (`make bench` writes the JSON
beside docs/benchmarks.md) or from a published limit of a store, named with its source.
"""

import json
import math
import sys

BOOKINGS_PER_S = 10_000
FANS = 500_000
# How fast the fans arrive: all of them within a minute of the sale opening (the product
# plans name the crowd, not its arrival; a minute is the crowd of a popular drop).
ARRIVAL_S = 60
# Cores a process of each kind gets, and how busy a core may run before latency suffers.
CORES_PER_PROCESS = 4
UTILISATION = 0.6

# Published limits.
DYNAMODB_PARTITION_WCU = 1_000
DYNAMODB_PARTITION_SOURCE = (
    "[DynamoDB: partitions](https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
    "HowItWorks.Partitions.html), 1,000 write units a second per partition"
)
DYNAMODB_TXN_WCU_PER_KB = 2
DYNAMODB_TXN_SOURCE = (
    "[DynamoDB transactions: capacity](https://docs.aws.amazon.com/amazondynamodb/latest/"
    "developerguide/transaction-apis.html#transaction-capacity-handling), two writes per item "
    "and KB, one to prepare and one to commit"
)
DYNAMODB_TABLE_WCU = 40_000
DYNAMODB_TABLE_SOURCE = (
    "[DynamoDB service quotas](https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
    "ServiceQuotas.html), 40,000 write units a second per on-demand table by default "
    "(adjustable)"
)
PG_MAX_CONNECTIONS = 100
PG_CONNECTIONS_SOURCE = (
    "[PostgreSQL: max_connections](https://www.postgresql.org/docs/15/"
    "runtime-config-connection.html), 100 by default"
)
IN_DOUBT_SHARDS = 8  # orders-dynamo/src/items.rs
# Items a one-seat sale writes in DynamoDB (orders-dynamo's write paths): 2PC prepares the
# participant, the order, the in-doubt marker, the seat claim and the idempotency key
# (two_phase.rs), then commits the order and participant and deletes the marker; a saga
# step and a lease write put the order, the claim and the key, and confirm the order.
ITEMS_PER_SALE = {"2pc": 8, "saga": 4, "lease": 4}
POOLS = {"coordinator": 32, "inventory-pg": 32, "payments": 32}  # each crate's config.rs


def main(path):
    bench = json.load(open(path))
    drops = {m["drop"]["protocol"]: m for m in bench["drops"]}
    stores = bench["stores"]
    pg_pace = stores["postgres_prepared"]["operations_per_s"]
    redis_pace = stores["redis_set_nx_px"]["operations_per_s"]
    out = []
    w = out.append
    w("# Capacity: 500,000 fans and 10,000 bookings a second, on paper\n")
    w(
        "The product plans ask for 500,000 users and 10,000 bookings a second. This page derives "
        "what that needs from the costs `make bench` measured (docs/benchmarks.md, \"What a sale "
        "and a fan cost\"; the run's JSON is the input of `scripts/capacity.py`, which writes "
        "this page) and from the stores' published limits. Assumptions, named once: the "
        f"{FANS:,} fans arrive within {ARRIVAL_S} s of the opening ({FANS // ARRIVAL_S:,} joins "
        f"a second); sales run at {BOOKINGS_PER_S:,} a second, one seat each; a process gets "
        f"{CORES_PER_PROCESS} cores and runs them at most {UTILISATION:.0%} busy; the measured "
        "CPU of this machine's cores carries over. Per-sale costs include the fans who bought "
        "nothing and the background work over the drop, so they err high.\n"
    )
    w("## Measured inputs\n")
    w("| per sale (or per fan) | " + " | ".join(drops) + " |")
    w("| --- |" + " ---: |" * len(drops))

    def per_sale(m, value):
        return value / max(m["drop"]["sold"], 1)

    def per_fan(m, value):
        return value / max(m["drop"]["fans"], 1)

    def cpu(m, process):
        return m["usage"].get(process, {}).get("cpu_s", 0.0)

    rows = [
        ("coordinator CPU ms per sale", lambda m: per_sale(m, cpu(m, "coordinator")) * 1e3, "{:.2f}"),
        ("inventory-pg CPU ms per sale", lambda m: per_sale(m, cpu(m, "inventory-pg")) * 1e3, "{:.2f}"),
        ("orders-dynamo CPU ms per sale", lambda m: per_sale(m, cpu(m, "orders-dynamo")) * 1e3, "{:.2f}"),
        ("payments CPU ms per sale", lambda m: per_sale(m, cpu(m, "payments")) * 1e3, "{:.2f}"),
        ("waiting-room CPU µs per fan", lambda m: per_fan(m, cpu(m, "waiting-room")) * 1e6, "{:.0f}"),
        ("PostgreSQL commits per sale, coordinator log", lambda m: per_sale(m, ops(m)["pg_commits"].get("coordinator", 0)), "{:.1f}"),
        ("PostgreSQL commits per sale, inventory", lambda m: per_sale(m, ops(m)["pg_commits"].get("inventory", 0)), "{:.1f}"),
        ("PostgreSQL commits per sale, payments", lambda m: per_sale(m, ops(m)["pg_commits"].get("payments", 0)), "{:.1f}"),
        ("PostgreSQL WAL bytes per sale", lambda m: per_sale(m, ops(m)["wal_bytes"]), "{:.0f}"),
        ("DynamoDB requests per sale", lambda m: per_sale(m, sum(ops(m)["dynamodb"].values())), "{:.2f}"),
        ("Redis commands per fan", lambda m: per_fan(m, ops(m)["redis_commands"]), "{:.1f}"),
    ]
    for label, value, fmt in rows:
        w(f"| {label} | " + " | ".join(fmt.format(value(m)) for m in drops.values()) + " |")
    w("")
    w(
        f"The stores' own pace on this machine, same run: PostgreSQL {pg_pace:,.0f} prepared "
        f"commits a second (16 connections), Redis {redis_pace:,.0f} `SET NX PX` a second, "
        f"DynamoDB Local {stores['dynamodb_sale']['sales_per_s']:,.0f} one-sale transactions a "
        "second (a single-process emulator: its pace says nothing of DynamoDB's, whose limits "
        "below are the published ones).\n"
    )

    w("## What the load needs\n")
    w("| resource | need | limit | source of the limit | ratio |")
    w("| --- | --- | --- | --- | ---: |")
    walls = []

    def need(resource, needed, limit, unit, source):
        ratio = needed / limit
        walls.append((ratio, resource))
        w(f"| {resource} | {needed:,.0f} {unit} | {limit:,.0f} {unit} | {source} | {ratio:.1f} |")

    joins_per_s = FANS / ARRIVAL_S
    for protocol, m in drops.items():
        cores = per_sale(m, cpu(m, "coordinator")) * BOOKINGS_PER_S / UTILISATION
        w(
            f"| coordinators, {protocol} | {cores:.1f} cores = "
            f"{plural(math.ceil(cores / CORES_PER_PROCESS), 'process')} of {CORES_PER_PROCESS} | - | "
            "measured CPU per sale | - |"
        )
    room = max(per_fan(m, cpu(m, "waiting-room")) for m in drops.values())
    room_cores = room * joins_per_s / UTILISATION
    w(
        f"| waiting-room processes | {room_cores:.1f} cores = "
        f"{plural(math.ceil(room_cores / CORES_PER_PROCESS), 'process')} of {CORES_PER_PROCESS} | - | "
        "measured CPU per fan (the costliest protocol) | - |"
    )
    for protocol, m in drops.items():
        commits = per_sale(m, ops(m)["pg_commits"].get("coordinator", 0)) * BOOKINGS_PER_S
        need(
            f"coordinator log commits, {protocol}",
            commits,
            pg_pace,
            "commits/s",
            "this run's PostgreSQL pace (one server, this machine)",
        )
    for protocol, m in drops.items():
        wal = per_sale(m, ops(m)["wal_bytes"]) * BOOKINGS_PER_S / 1e6
        w(f"| PostgreSQL WAL, {protocol} (all databases) | {wal:,.0f} MB/s | - | measured WAL per sale | - |")
    connections = sum(POOLS.values())
    w(
        f"| PostgreSQL connections per set of one coordinator, inventory and payments process | "
        f"{connections} | {PG_MAX_CONNECTIONS} | {PG_CONNECTIONS_SOURCE} | "
        f"{connections / PG_MAX_CONNECTIONS:.1f} |"
    )
    for protocol, items in ITEMS_PER_SALE.items():
        wcu = items * DYNAMODB_TXN_WCU_PER_KB * BOOKINGS_PER_S
        need(f"DynamoDB table writes, {protocol} ({items} items of ≤ 1 KB a sale)", wcu, DYNAMODB_TABLE_WCU, "WCU/s", DYNAMODB_TABLE_SOURCE)
    shard = 2 * DYNAMODB_TXN_WCU_PER_KB * BOOKINGS_PER_S / IN_DOUBT_SHARDS
    need(
        f"DynamoDB, 2pc in-doubt markers per shard (a put and a delete a sale over {IN_DOUBT_SHARDS} keys)",
        shard,
        DYNAMODB_PARTITION_WCU,
        "WCU/s",
        DYNAMODB_PARTITION_SOURCE + "; " + DYNAMODB_TXN_SOURCE,
    )
    redis_cmds = max(per_fan(m, ops(m)["redis_commands"]) for m in drops.values()) * joins_per_s
    need(
        "Redis commands of one event's room (one hash slot: one shard)",
        redis_cmds,
        redis_pace,
        "commands/s",
        "this run's Redis pace (`SET NX PX`, one instance; a script's commands cost more)",
    )
    room_bytes = [per_fan(m, ops(m).get("redis_room_bytes", 0)) for m in drops.values()]
    if max(room_bytes) > 0:
        w(
            f"| Redis memory of the room | {max(room_bytes) * FANS / 2**20:,.0f} MiB for {FANS:,} "
            f"fans ({max(room_bytes):,.0f} bytes a fan) | - | measured (`MEMORY USAGE` of the room's keys) | - |"
        )
    w("")
    walls.sort(reverse=True)
    first = walls[0]
    w("## The first wall\n")
    w(
        f"The largest ratio of need to limit is **{first[1]}**, {first[0]:.1f} times its "
        "limit. In order:\n"
    )
    for ratio, resource in walls:
        w(f"- {resource}: {ratio:.1f}×")
    w("")
    w(PAST_THE_WALLS)
    return "\n".join(out)


PAST_THE_WALLS = """## Past the walls

- **The coordinator log.** Every write of a purchase goes to its coordinator log, checked
  against the purchase's owner and epoch in the same statement; one PostgreSQL server takes
  this machine's pace of commits. The log shards by purchase: several logs, each with its
  coordinators, share the participants, which keep each log's branches apart (`log_id`,
  issue 23), so the need above is met by as many logs as its ratio says, on servers like
  this one, or fewer on bigger ones. The next lever is commits per sale: the steps are
  group-committed and the outbox row and 2PC's payment ride the decision's commit already;
  the room's release note could ride the step group (docs/benchmarks.md, "What would save
  the most next").
- **One event's room in Redis.** A room's keys share one hash slot (`{event}`), so one
  event's room runs at one Redis shard's pace, whatever the cluster's size. Past it (a
  faster arrival, or scripts costlier than the `SET` this pace was measured with), an
  event's queue would be split over several slots with a merged admission
  order — not built.
- **DynamoDB.** Under 2PC the in-doubt markers are written over 8 keys, a hot spot at this
  rate; 64 keys (`IN_DOUBT_SHARDS` in orders-dynamo/src/items.rs) bring each under a
  partition's limit. The table's default quota is adjustable; orders, claims and
  idempotency keys spread over partitions by order, seat and key.
- **Connections.** One coordinator, inventory and payments process together hold up to 96
  connections with the default pools: more processes need a larger `max_connections` or
  smaller pools (`--pool-size`).
"""


def plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}es"


def ops(m):
    return m.get("ops") or {"pg_commits": {}, "wal_bytes": 0, "dynamodb": {}, "redis_commands": 0}


if __name__ == "__main__":
    sys.stdout.write(main(sys.argv[1]))
