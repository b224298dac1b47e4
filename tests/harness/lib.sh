# Shared by tests/harness/demo.sh and tests/harness/run-tests.sh: installs the real components
# the portal is tested and demonstrated with into project-local, git-ignored places, starts them
# on free loopback ports, and stops what it started.
#
# Installs: npm packages (htmx, oidc-provider, playwright-core) into node_modules/; Python venvs
# .venv-moto (AWS emulator), .venv-lint (cfn-lint), .venv-checkov (checkov); Debian chromium via
# apt when missing (browser test only).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${STACKGATE_RUN_DIR:-$ROOT/.tools/run}"
mkdir -p "$RUN_DIR"
STARTED_PIDS=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A venv from a requirements file, rebuilt only when the file changes.
ensure_venv() {
    local venv="$1" reqs="$2"
    local stamp="$venv/.requirements.sha256"
    local want; want="$(sha256sum "$reqs" | cut -d' ' -f1)"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    say "Installing $(basename "$reqs") into $(basename "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" > "$stamp"
}

ensure_node_modules() {
    command -v node >/dev/null || die "Node.js is needed (apt-get install nodejs npm)"
    local stamp="$ROOT/node_modules/.package-lock.sha256"
    local want; want="$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)"
    if [ -d "$ROOT/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    say "Installing npm packages (htmx, oidc-provider, playwright-core)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
}

ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then return 0; fi
    say "Installing Debian chromium (browser test)"
    command -v apt-get >/dev/null || die "Chromium is needed at /usr/bin/chromium and apt-get is not available"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# Waits until FILE is non-empty (a component's ready file), or fails naming the log. With a
# fifth argument "quiet" it returns 1 on a timeout instead of failing.
wait_for_file() {
    local file="$1" what="$2" log="$3" pid="$4" mode="${5:-}"
    for _ in $(seq 1 1200); do
        [ -s "$file" ] && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "$what exited during start-up (log: $log)"; }
        sleep 0.1
    done
    tail -n 30 "$log" >&2
    [ "$mode" = quiet ] && return 1
    die "$what did not become ready in 120 s (log: $log)"
}

# Starts a component in the background and waits for its ready file (READY LOG WHAT CMD...).
# A component alive but not ready after 120 s (seen once with the IdP in CI, never reproduced)
# is stopped and started once more before the run fails.
launch() {
    local ready="$1" log="$2" what="$3"; shift 3
    local attempt pid
    for attempt in 1 2; do
        rm -f "$ready"
        "$@" > "$log" 2>&1 &
        pid=$!
        STARTED_PIDS+=("$pid")
        if [ "$attempt" = 1 ]; then
            wait_for_file "$ready" "$what" "$log" "$pid" quiet && return 0
            say "$what was not ready after 120 s; starting it once more"
            kill "$pid" 2>/dev/null || true
        else
            wait_for_file "$ready" "$what" "$log" "$pid"
        fi
    done
}

# Accounts/regions that get an issued ACM certificate (for HTTPS listeners): the demo's workload
# accounts and the accounts the tests deploy into, in both regions the portal offers.
CERTIFICATE_ACCOUNTS="$(for a in 200000000001 200000000002 200000000003 200000000004 222222222222 333333333333; do
    printf '%s:eu-west-2,%s:eu-west-1,' "$a" "$a"; done)"

# The AWS emulator (tests/harness/emulator/README.md): moto with its patches proven at start-up.
# Sets AWS_ENDPOINT; exports STACKGATE_TEST_CERTIFICATES, a JSON file {"ACCOUNT/REGION": "ARN"}.
start_moto() {
    export STACKGATE_TEST_CERTIFICATES="$RUN_DIR/certificates.json"
    launch "$RUN_DIR/moto.port" "$RUN_DIR/moto.log" "the AWS emulator" \
        env PYTHONPATH="$ROOT/tests/harness" "$ROOT/.venv-moto/bin/python" -m emulator --port 0 \
        --port-file "$RUN_DIR/moto.port" --roles "$ROOT/tests/harness/roles.json" \
        --certificates "$STACKGATE_TEST_CERTIFICATES" --certificate-accounts "${CERTIFICATE_ACCOUNTS%,}"
    AWS_ENDPOINT="http://127.0.0.1:$(cat "$RUN_DIR/moto.port")"
    say "AWS emulator (moto) at $AWS_ENDPOINT"
}

start_idp() {
    launch "$RUN_DIR/idp.url" "$RUN_DIR/idp.log" "the OIDC provider" \
        node "$ROOT/tests/harness/idp.mjs" --port "${1:-0}" --users "$ROOT/tests/harness/users.json" \
        --ready-file "$RUN_DIR/idp.url"
    OIDC_ISSUER="$(cat "$RUN_DIR/idp.url")"
    say "OIDC provider at $OIDC_ISSUER"
}

stop_started() {
    local pid
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
    STARTED_PIDS=()
}

# The emulator accepts any static key; the portal's own AWS identity in tests and the demo.
export_demo_aws_identity() {
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
    unset AWS_PROFILE AWS_SESSION_TOKEN
}
