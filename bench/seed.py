#!/usr/bin/env python3
"""Fill a migrated stackgate database with a realistic volume of requests for the page benchmark.

    bench/seed.py --sqlite PATH --requests 100000 --tokens OUT.json
    bench/seed.py --postgres URL --requests 100000 --tokens OUT.json

The shape follows what a busy estate looks like to the portal: 16 teams besides `payments`
(payments holds a fifth of all requests), about a quarter of every team's requests pending
approval, the rest deployed, failed, rejected or cancelled; one approval per deployed request,
and bob's approval on one in ten of payments' pending requests (those leave his inbox). Templates
are stored once per digest, as the portal does: 64 distinct rendered templates of about 40 KB.

Two signed-in users are created with sessions whose cookie values go to --tokens:
alice (payments requester) and bob (payments approver). The database must already be migrated
and hold the demo accounts (start the portal once on it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sqlite3
import subprocess
import sys
import time

TEAMS = ["payments"] + [f"team-{i:02d}" for i in range(1, 17)]
ACCOUNTS = ["200000000001", "200000000002", "200000000003"]
CLASSES = ["dev", "test", "prod"]
TEMPLATES = 64


def token_hash(purpose: str, token: str) -> str:
    return hashlib.sha256(purpose.encode() + b"\0" + token.encode()).hexdigest()


def template_body(i: int) -> str:
    resources = {
        f"Resource{j:03d}": {"Type": "AWS::EC2::Subnet", "Properties": {"CidrBlock": f"10.{i}.{j}.0/24", "Note": "x" * 500}}
        for j in range(70)
    }
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}, indent=2)


def statements(n: int, now_ms: int, sqlite: bool) -> list[str]:
    """The SQL that writes everything, in the dialect of the backend."""
    hexid = (
        "printf('%08x-0000-4000-8000-%012x', i, i)"
        if sqlite
        else "lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0')"
    )
    mod = lambda a, b: f"({a} % {b})"  # noqa: E731 - same operator in both dialects
    # Team: payments for i % 5 == 0, else one of 16 other teams.
    if sqlite:
        team = "CASE WHEN i % 5 = 0 THEN 'payments' ELSE printf('team-%02d', 1 + (i / 5) % 16) END"
        digest = "printf('%064x', i % 64)"
    else:
        team = "CASE WHEN i % 5 = 0 THEN 'payments' ELSE 'team-' || lpad((1 + (i / 5) % 16)::text, 2, '0') END"
        digest = "lpad(to_hex(i % 64), 64, '0')"
    # Within a team, a quarter pending, then the rest; k counts the team's own requests.
    k = "(i / 5)"
    status = (
        f"CASE {mod(k, 20)} WHEN 0 THEN 'pending_approval' WHEN 1 THEN 'pending_approval' "
        "WHEN 2 THEN 'pending_approval' WHEN 3 THEN 'pending_approval' WHEN 4 THEN 'pending_approval' "
        "WHEN 5 THEN 'failed' WHEN 6 THEN 'failed' WHEN 7 THEN 'rejected' WHEN 8 THEN 'rejected' "
        "WHEN 9 THEN 'cancelled' WHEN 10 THEN 'approved' ELSE 'deployed' END"
    )
    account = f"CASE {mod('i', 3)} WHEN 0 THEN '200000000001' WHEN 1 THEN '200000000002' ELSE '200000000003' END"
    klass = f"CASE {mod('i', 3)} WHEN 0 THEN 'dev' WHEN 1 THEN 'test' ELSE 'prod' END"
    series = (
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
        if sqlite
        else f"WITH n(i) AS (SELECT generate_series(1, {n})) "
    )
    created = f"{now_ms - n * 1000} + i * 1000"
    requests = (
        series
        + "INSERT INTO service_requests (id, number, title, team, requester_id, blueprint_slug, "
        "blueprint_version, blueprint_digest, account_id, region, env_class, env_name, stack_name, "
        "params_json, template_digest, content_hash, policy_json, status, status_reason, version, "
        "created_at, updated_at) SELECT "
        f"{hexid}, i, 'Three-tier network ''env-' || i || ''' in ' || ({klass}) || ' (eu-west-2)', "
        f"{team}, CASE WHEN i % 5 = 0 THEN 'bench-alice' ELSE 'bench-other' END, 'network', '1.1.0', "
        f"'bench-blueprint', {account}, 'eu-west-2', {klass}, 'env-' || i, "
        f"'stackgate-' || ({team}) || '--env-' || i || '-' || ({klass}), "
        f"'{{\"vpc_cidr\":\"10.10.0.0/16\",\"az_count\":2}}', {digest}, 'hash-' || i, "
        f"'{{\"passed\":true,\"results\":[]}}', {status}, NULL, 1, {created}, {created} FROM n"
    )
    approvals = (
        "INSERT INTO approvals (id, request_id, approver_id, decision, comment, content_hash, created_at) "
        "SELECT 'a-' || id, id, 'bench-bob', 'approve', '', content_hash, created_at + 1000 "
        "FROM service_requests WHERE requester_id = 'bench-alice' AND "
        f"(status = 'deployed' OR (status = 'pending_approval' AND number % 50 = 0))"
    )
    return [requests, approvals]


def users_and_sessions(now_ms: int) -> tuple[list[tuple], dict[str, str]]:
    tokens = {"alice": secrets.token_urlsafe(32), "bob": secrets.token_urlsafe(32)}
    users = [
        ("bench-alice", "alice", ["payments-requesters"]),
        ("bench-bob", "bob", ["payments-approvers"]),
        ("bench-other", "olga", ["team-01-requesters"]),
    ]
    rows = []
    for uid, name, groups in users:
        rows.append(("user", uid, name, json.dumps(groups)))
    for name, tok in tokens.items():
        rows.append(("session", token_hash("session", tok), f"bench-{name}", secrets.token_urlsafe(32)))
    return rows, tokens


def seed_sqlite(path: str, n: int, now_ms: int) -> dict[str, str]:
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # seeding only; the portal sets FULL itself
    rows, tokens = users_and_sessions(now_ms)
    with db:
        for kind, a, b, c in rows:
            if kind == "user":
                db.execute(
                    "INSERT INTO users (id, issuer, subject, email, name, groups_json, created_at, last_login_at) "
                    "VALUES (?, 'bench', ?, NULL, ?, ?, ?, ?)",
                    (a, a, b, c, now_ms, now_ms),
                )
            else:
                db.execute(
                    "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, groups_checked_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (a, b, c, now_ms, now_ms, now_ms + 24 * 3600_000, now_ms + 24 * 3600_000),
                )
        for i in range(TEMPLATES):
            db.execute(
                "INSERT INTO rendered_templates (digest, body, created_at) VALUES (?, ?, ?)",
                (format(i, "064x"), template_body(i), now_ms),
            )
        for sql in statements(n, now_ms, sqlite=True):
            db.execute(sql)
        db.execute("UPDATE counters SET value = ? WHERE name = 'request_number'", (n,))
    db.execute("ANALYZE")
    db.close()
    return tokens


def seed_postgres(url: str, n: int, now_ms: int) -> dict[str, str]:
    rows, tokens = users_and_sessions(now_ms)
    sql = ["BEGIN;"]
    for kind, a, b, c in rows:
        if kind == "user":
            sql.append(
                "INSERT INTO users (id, issuer, subject, email, name, groups_json, created_at, last_login_at) "
                f"VALUES ('{a}', 'bench', '{a}', NULL, '{b}', '{c}', {now_ms}, {now_ms});"
            )
        else:
            sql.append(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, groups_checked_at) "
                f"VALUES ('{a}', '{b}', '{c}', {now_ms}, {now_ms}, {now_ms + 24 * 3600_000}, {now_ms + 24 * 3600_000});"
            )
    for i in range(TEMPLATES):
        body = template_body(i).replace("'", "''")
        sql.append(f"INSERT INTO rendered_templates (digest, body, created_at) VALUES ('{i:064x}', '{body}', {now_ms});")
    sql += [s + ";" for s in statements(n, now_ms, sqlite=False)]
    sql.append(f"UPDATE counters SET value = {n} WHERE name = 'request_number';")
    sql.append("COMMIT; ANALYZE;")
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url], input="\n".join(sql), text=True, check=True)
    return tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite")
    where.add_argument("--postgres")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--tokens", required=True)
    args = ap.parse_args()
    now_ms = int(time.time() * 1000)
    t0 = time.time()
    if args.sqlite:
        tokens = seed_sqlite(args.sqlite, args.requests, now_ms)
    else:
        tokens = seed_postgres(args.postgres, args.requests, now_ms)
    with open(args.tokens, "w") as f:
        json.dump(tokens, f)
    print(f"seeded {args.requests} requests in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
