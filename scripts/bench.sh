#!/usr/bin/env bash
# The benchmark: a ticket drop of 50,000 fans on 500 seats under each protocol, against
# the running mesh (`make up`), with the figures written to docs/benchmarks.md together
# with the machine they ran on.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLI="$ROOT/target/release/ticketdrop"
FANS="${TICKETDROP_BENCH_FANS:-50000}"
SEATS="${TICKETDROP_BENCH_SEATS:-500}"
CONCURRENCY="${TICKETDROP_BENCH_CONCURRENCY:-64}"
OUT="$ROOT/docs/benchmarks.md"
RUN="bench-$(date +%s)"

results=()
for protocol in 2pc saga lease; do
    echo "bench: $protocol, $FANS fans, $SEATS seats, concurrency $CONCURRENCY" >&2
    results+=("$("$CLI" drop --event "$RUN-$protocol" --protocol "$protocol" --fans "$FANS" \
        --seats "$SEATS" --concurrency "$CONCURRENCY" --json)")
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
memory=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD)

python3 - "$OUT" "$FANS" "$SEATS" "$CONCURRENCY" "$(nproc)" "$cpu" "$memory" "$commit" "${results[@]}" <<'PY'
import json, sys, datetime
out, fans, seats, concurrency, cores, cpu, memory, commit, *results = sys.argv[1:]
reports = [json.loads(r) for r in results]
rows = [
    ("sold", "sold"), ("sold-out answers", "sold_out"), ("conflicts", "conflicts"),
    ("declines", "declines"), ("unknown outcomes", "unknown"), ("errors", "errors"),
    ("oversold (audit)", "oversold"), ("audit violations", "audit_violations"),
    ("duration (s)", "duration_s"), ("purchases/s", "purchases_per_s"),
    ("attempts/s", "attempts_per_s"), ("p50 (ms)", "p50_ms"), ("p95 (ms)", "p95_ms"), ("p99 (ms)", "p99_ms"),
]
def fmt(v):
    return f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"
lines = [
    "# Benchmarks",
    "",
    "`make bench` (after `make up`): `ticketdrop drop --fans %s --seats %s --concurrency %s` under each" % (fans, seats, concurrency),
    "protocol, every fan its own user and idempotency key, buying one best-available seat.",
    "Release build, the local stack of `make up`, everything on one machine.",
    "",
    "Machine: %s cores (%s), %s of memory. Commit %s, %s." % (cores, cpu, memory, commit, datetime.date.today().isoformat()),
    "",
    "| | " + " | ".join(r["protocol"] for r in reports) + " |",
    "| --- | " + " | ".join("---:" for _ in reports) + " |",
]
for label, key in rows:
    lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in reports) + " |")
with open(out + ".figures", "w") as f:
    f.write("\n".join(lines) + "\n")
PY

# Keep the hand-written analysis below the figures.
analysis=""
if [[ -f $OUT ]] && grep -q '^## What the figures say' "$OUT"; then
    analysis=$(sed -n '/^## What the figures say/,$p' "$OUT")
fi
{ cat "$OUT.figures"; [[ -n $analysis ]] && printf '\n%s\n' "$analysis"; } >"$OUT"
rm -f "$OUT.figures"
echo "bench: wrote $OUT" >&2
cat "$OUT"
