#!/usr/bin/env bash
# `make demo`: stackgate on SQLite with the local OIDC provider (demo users) and the AWS emulator,
# seeded with the seven accounts of the reference architecture. Ctrl-C stops everything.
source "$(dirname "$0")/lib.sh"
trap stop_started EXIT INT TERM

ensure_node_modules
ensure_venv "$ROOT/.venv-moto" "$ROOT/tests/harness/requirements-moto.txt"
say "Building stackgate"
(cd "$ROOT" && cargo build --quiet --bin stackgate)
start_moto
start_idp "${STACKGATE_DEMO_IDP_PORT:-0}"
export_demo_aws_identity
LISTEN="${STACKGATE_LISTEN:-127.0.0.1:8080}"
export STACKGATE_LISTEN="$LISTEN"
export STACKGATE_CONFIG="${STACKGATE_CONFIG:-$ROOT/config/demo.toml}"
export STACKGATE_DATABASE_URL="${STACKGATE_DATABASE_URL:-sqlite://$ROOT/data/demo.db}"
export STACKGATE_OIDC_ISSUER="$OIDC_ISSUER" STACKGATE_OIDC_CLIENT_ID=stackgate STACKGATE_OIDC_CLIENT_SECRET=stackgate-test-secret
export STACKGATE_AWS_ENDPOINT_URL="$AWS_ENDPOINT"
export STACKGATE_LOG_FORMAT="${STACKGATE_LOG_FORMAT:-pretty}"
cd "$ROOT"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/stackgate" serve &
PORTAL=$!
STARTED_PIDS+=("$PORTAL")
for _ in $(seq 1 100); do
    curl -fs "http://$LISTEN/readyz" >/dev/null 2>&1 && break
    kill -0 "$PORTAL" 2>/dev/null || die "stackgate exited during start-up"
    sleep 0.1
done
cat <<MSG

  stackgate is running at http://$LISTEN

  Sign in with any of these users (any password):
    alice  team payments, requester
    bob    team payments, approver
    carol  security, approver for every team
    dave   platform, admin
    erin   auditor
  (also frank: payments requester and approver; grace: team lending requester)

  Data: ${STACKGATE_DATABASE_URL}    AWS emulator: $AWS_ENDPOINT    IdP: $OIDC_ISSUER
  Ctrl-C stops the portal, the IdP and the emulator.

MSG
wait "$PORTAL"
