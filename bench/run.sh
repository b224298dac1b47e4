#!/usr/bin/env bash
# `make bench`: the pages people open most, under load, with a realistic number of requests
# stored. Release build, SQLite (or PostgreSQL with BENCH_DB=postgres), wrk with 1 thread and 64
# connections for BENCH_SECONDS per page, RSS read from /proc while under load.
#
#   make bench                          # 100,000 requests
#   BENCH_REQUESTS=1000000 make bench   # a million
#
# Prints one line per page: requests/s, its ratio to /healthz of the same binary, p99 latency,
# and the portal's resident memory after the page's load (and its peak).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N="${BENCH_REQUESTS:-100000}"
SECONDS_PER_PAGE="${BENCH_SECONDS:-10}"
BACKEND="${BENCH_DB:-sqlite}"
WORK="$(mktemp -d /tmp/stackgate-bench.XXXXXX)"
PORT="${BENCH_PORT:-18090}"
PORTAL=""
cleanup() {
    [ -n "$PORTAL" ] && kill "$PORTAL" 2>/dev/null && wait "$PORTAL" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || {
    echo "==> Installing wrk (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
echo "==> Building the release binary" >&2
cargo build --quiet --release --bin stackgate
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stackgate"

case "$BACKEND" in
    sqlite) DB_URL="sqlite://$WORK/bench.db" ;;
    postgres)
        PG="${STACKGATE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
        NAME="sg_bench_$$"
        psql -q "$PG" -c "create database $NAME"
        DB_URL="${PG%/*}/$NAME"
        trap 'cleanup; psql -q "$PG" -c "drop database if exists $NAME with (force)"' EXIT INT TERM
        ;;
    *) echo "BENCH_DB is sqlite or postgres" >&2; exit 2 ;;
esac

export STACKGATE_CONFIG="$ROOT/config/demo.toml" STACKGATE_DATABASE_URL="$DB_URL"
export STACKGATE_LISTEN="127.0.0.1:$PORT" STACKGATE_LOG=warn
# Discovery is lazy: the IdP is never contacted, sessions are seeded.
export STACKGATE_OIDC_ISSUER="http://127.0.0.1:9" STACKGATE_OIDC_CLIENT_ID=bench STACKGATE_OIDC_CLIENT_SECRET=bench
export STACKGATE_WORKER=false AWS_REGION=us-east-1

start() {
    "$BIN" serve >"$WORK/portal.log" 2>&1 &
    PORTAL=$!
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$PORTAL" 2>/dev/null || { cat "$WORK/portal.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "the portal did not become ready" >&2; exit 1
}
stop() { kill "$PORTAL"; wait "$PORTAL" 2>/dev/null || true; PORTAL=""; }

echo "==> Migrating and registering the demo accounts" >&2
start; stop
echo "==> Seeding $N requests ($BACKEND)" >&2
if [ "$BACKEND" = sqlite ]; then
    python3 bench/seed.py --sqlite "$WORK/bench.db" --requests "$N" --tokens "$WORK/tokens.json"
else
    python3 bench/seed.py --postgres "$DB_URL" --requests "$N" --tokens "$WORK/tokens.json"
fi
token() { python3 -c "import json,sys; print(json.load(open('$WORK/tokens.json'))['$1'])"; }
ALICE="stackgate_session=$(token alice)"
BOB="stackgate_session=$(token bob)"
start

rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$PORTAL/status"; }
hwm() { awk '/^VmHWM/ {print int($2/1024)}' "/proc/$PORTAL/status"; }
# run NAME PATH [COOKIE]: prints name, requests/s, p99 (ms), non-2xx count
run() {
    local name="$1" path="$2" cookie="${3:-}"
    local args=(-t1 -c64 "-d${SECONDS_PER_PAGE}s" --latency)
    [ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
    # Check the page answers 200 before loading it.
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' ${cookie:+-H "Cookie: $cookie"} "http://127.0.0.1:$PORT$path")
    [ "$code" = 200 ] || { echo "$path answered $code" >&2; exit 1; }
    wrk "${args[@]}" -d2s "http://127.0.0.1:$PORT$path" >/dev/null  # warm-up
    local out; out=$(wrk "${args[@]}" "http://127.0.0.1:$PORT$path")
    local rps p99 errors
    rps=$(awk '/^Requests\/sec/ {print int($2)}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "$name|$rps|$p99|${errors:-0}|$(rss)"
}

echo "==> Loading each page for ${SECONDS_PER_PAGE} s (wrk -t1 -c64)" >&2
HEALTH=$(run "/healthz" /healthz)
BASE=$(cut -d'|' -f2 <<<"$HEALTH")
printf '\n%s requests stored (%s)\n\n' "$N" "$BACKEND"
printf '%-28s %10s %8s %9s %8s %9s\n' page "req/s" "×healthz" "p99 ms" non-2xx "RSS MB"
for line in "$HEALTH" \
    "$(run 'home (requester)' / "$ALICE")" \
    "$(run 'home (approver)' / "$BOB")" \
    "$(run 'approvals inbox' /approvals "$BOB")" \
    "$(run 'GET /api/v1/requests' /api/v1/requests "$ALICE")"; do
    IFS='|' read -r name rps p99 errors mem <<<"$line"
    ratio=$(awk -v a="$rps" -v b="$BASE" 'BEGIN {printf "%.3f", a / b}')
    printf '%-28s %10s %8s %9s %8s %9s\n' "$name" "$rps" "$ratio" "$p99" "$errors" "$mem"
done
printf '\npeak RSS %s MB\n' "$(hwm)"
