#!/usr/bin/env bash
# `make test`: the whole suite on real components. Installs what it needs (project-local), starts
# the AWS emulator and the OIDC provider, finds PostgreSQL (or starts a private one), runs
# formatting and lint checks, the Rust unit and integration tests (SQLite and PostgreSQL), and the
# browser test in headless Chromium; stops what it started; exits non-zero on any failure.
source "$(dirname "$0")/lib.sh"
trap 'stop_started; stop_private_pg' EXIT INT TERM
cd "$ROOT"
T0=$(date +%s)

PG_PRIVATE_DIR=""
stop_private_pg() {
    if [ -n "$PG_PRIVATE_DIR" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_PRIVATE_DIR" -m fast stop >/dev/null 2>&1 || true
    fi
}

pg_reachable() { python3 - "$1" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(); s.settimeout(1)
try:
    s.connect((host, int(port))); print("ok")
except OSError:
    sys.exit(1)
PY
}

# PostgreSQL: the one this machine kind runs at 127.0.0.1:5432 (trust auth, database test), or a
# private cluster started here, or a clear failure. Never a silent skip.
ensure_postgres() {
    if [ -n "${STACKGATE_TEST_PG_URL:-}" ]; then return 0; fi
    if pg_reachable 127.0.0.1:5432 >/dev/null 2>&1; then
        export STACKGATE_TEST_PG_URL="postgres://postgres@127.0.0.1:5432/test"
        return 0
    fi
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$PG_BIN" ] || ! id postgres >/dev/null 2>&1; then
        die "PostgreSQL is not running at 127.0.0.1:5432 and none is installed to start privately.
  Install it (apt-get install postgresql) or point STACKGATE_TEST_PG_URL at a server where the
  user may create databases, e.g. postgres://postgres@127.0.0.1:5432/test"
    fi
    PG_PRIVATE_DIR="$ROOT/.tools/pg"
    local port=55432
    say "Starting a private PostgreSQL cluster on 127.0.0.1:$port"
    rm -rf "$PG_PRIVATE_DIR"; mkdir -p "$PG_PRIVATE_DIR"; chown postgres "$PG_PRIVATE_DIR"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_PRIVATE_DIR" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_PRIVATE_DIR" -l "$PG_PRIVATE_DIR/log" \
        -o "-h 127.0.0.1 -p $port -k /tmp" -w start >/dev/null
    runuser -u postgres -- "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" test
    export STACKGATE_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/test"
}

say "Setting up (npm, Python venvs, Chromium, PostgreSQL)"
ensure_node_modules
ensure_venv "$ROOT/.venv-moto" "$ROOT/tests/harness/requirements-moto.txt"
ensure_venv "$ROOT/.venv-lint" "$ROOT/tests/harness/requirements-lint.txt"
ensure_venv "$ROOT/.venv-checkov" "$ROOT/tests/harness/requirements-checkov.txt"
ensure_chromium
ensure_postgres
say "PostgreSQL at $STACKGATE_TEST_PG_URL"

say "Checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --quiet --all-targets -- -D warnings

# Licences and banned crates (deny.toml). cargo-deny is built once into the build cache's tools
# folder (a fresh cache: about 6 minutes on 2 cores) and needs no network to check.
say "Checking dependencies (licences, banned crates)"
DENY_ROOT="${CARGO_TARGET_DIR:-$ROOT/target}/tools"
if [ ! -x "$DENY_ROOT/bin/cargo-deny" ]; then
    cargo install --quiet --locked --no-default-features --root "$DENY_ROOT" cargo-deny@0.20.2
fi
"$DENY_ROOT/bin/cargo-deny" --log-level error check licenses bans

start_moto
start_idp
export_demo_aws_identity
export STACKGATE_TEST_AWS_ENDPOINT="$AWS_ENDPOINT"
export STACKGATE_TEST_OIDC_ISSUER="$OIDC_ISSUER"
export STACKGATE_TEST_CFN_LINT="$ROOT/.venv-lint/bin/cfn-lint"
export STACKGATE_TEST_CHECKOV="$ROOT/.venv-checkov/bin/checkov"
export RUST_BACKTRACE=0

say "Running the Rust tests (unit and integration, SQLite and PostgreSQL)"
cargo test --all-targets --no-fail-fast

say "Running the browser test in headless Chromium"
cargo build --quiet --bin stackgate
node "$ROOT/tests/browser/run.mjs"

say "Running the README's first command, make demo, from a fresh clone"
node "$ROOT/tests/browser/demo-smoke.mjs"

say "All tests passed in $(( $(date +%s) - T0 )) s"
