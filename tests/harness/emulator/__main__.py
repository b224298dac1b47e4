"""Run the AWS emulator (moto server) for stackgate's integration tests.

    PYTHONPATH=tests/harness .venv-moto/bin/python -m emulator --port 0 --port-file /tmp/moto.port \\
        --roles tests/harness/roles.json [--certificates /tmp/certs.json --certificate-accounts A:R,...] &
    # wait for the port file, then:
    STACKGATE_TEST_AWS_ENDPOINT=http://127.0.0.1:$(cat /tmp/moto.port) cargo test --test it aws::

Starts `moto.server.ThreadedMotoServer` on 127.0.0.1, applies every patch of `emulator.registry`,
*proves* each one against the running server through the public API (refusing to start if one does
not hold), wipes the state the proofs left, creates the IAM roles of --roles and the certificates
of --certificate-accounts, writes the bound port to --port-file, prints one `ready` line and runs
until SIGTERM or SIGINT. `--without-patch NAME` leaves one out to watch its proof catch the bug.

MOTO_ACCOUNT_ID is never set (and is refused if present): it would force every request, assumed
roles included, into one account and hide cross-account bugs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback
import urllib.request
import warnings

from . import MOTO_VERSION
from .proof import ProofContext
from .registry import PATCHES, by_name


def say(message: str) -> None:
    print(f"emulator: {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    from .certificates import parse_accounts

    parser = argparse.ArgumentParser(prog="emulator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--port-file", help="write the bound port here once ready")
    parser.add_argument("--verbose", action="store_true", help="log every request, and each proof's time, to stderr")
    parser.add_argument("--roles", metavar="FILE", help="roles to create once the proofs are done (format: emulator/roles.py); "
                        "without it every AssumeRole is refused")
    parser.add_argument("--certificates", metavar="FILE", help='write {"ACCOUNT/REGION": "certificate ARN"} here, '
                        "for the issued certificates of --certificate-accounts")
    parser.add_argument("--certificate-accounts", metavar="ACCOUNT:REGION,...", default=[], type=parse_accounts,
                        help="put an issued ACM certificate into each, after the proofs (needs --certificates)")
    parser.add_argument("--without-patch", action="append", default=[], metavar="NAME",
                        help="leave a patch out, to see its proof catch the stock bug (the emulator then refuses to start)")
    args = parser.parse_args()
    unknown = [n for n in args.without_patch if by_name(n) is None]
    if unknown:
        parser.error(f"unknown patch(es) {unknown}; known: {[p.NAME for p in PATCHES]}")
    args.without_patch = {by_name(n).NAME for n in args.without_patch}  # type: ignore[union-attr]
    if args.certificate_accounts and not args.certificates:
        parser.error("--certificate-accounts needs --certificates FILE")
    args.role_specs = []
    if args.roles:
        from .roles import load_roles

        try:
            args.role_specs = load_roles(args.roles)
        except (OSError, ValueError) as exc:
            parser.error(f"--roles {args.roles}: {exc}")
    return args


def prove_all(endpoint: str, verbose: bool, certificates: bool) -> list[str]:
    """Run every patch's proof (left-out ones too: they should fail), and the certificate fixture's
    when it is asked for; the failures, described."""
    from . import certificates as fixture

    ctx = ProofContext(endpoint)
    proofs = [(patch.NAME, patch.prove) for patch in PATCHES] + ([("certificates", fixture.prove)] if certificates else [])
    failures = []
    for name, prove in proofs:
        started = time.monotonic()
        try:
            prove(ctx)
        except Exception as exc:  # ProofFailed, or an API error the patch should have prevented
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            failures.append(f"{name}: {detail}")
        if verbose:
            say(f"proved {name} in {time.monotonic() - started:.2f}s")
    return failures


def write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main() -> int:
    args = parse_args()
    if os.environ.get("MOTO_ACCOUNT_ID"):
        say("refusing to start: MOTO_ACCOUNT_ID is set; it forces every request into one account and breaks cross-account tests")
        return 2
    started, cpu_started = time.monotonic(), time.process_time()
    import moto

    if moto.__version__ != MOTO_VERSION:
        say(f"warning: the patches were written for moto {MOTO_VERSION}, found {moto.__version__}; the proofs decide")
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto warns when a rollback finds a resource that was never created: expected, not news.
    warnings.filterwarnings("ignore", category=UserWarning)

    for patch in PATCHES:
        if patch.NAME in args.without_patch:
            say(f"leaving out {patch.NAME}")
            continue
        try:
            patch.apply()
        except Exception as exc:  # an internal moved: refuse to run with an unpatched emulator
            say(f"cannot apply {patch.NAME}: {exc!r}")
            return 3

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    failures = prove_all(endpoint, args.verbose, bool(args.certificates))
    if failures:
        for failure in failures:
            say(f"proof failed: {failure}")
        say(f"refusing to start: {len(failures)} proof(s) of {len(PATCHES)} patches (and fixtures) do not hold")
        server.stop()
        return 4
    proofs_done = time.monotonic()
    # Leave no trace of the proofs: tests start from an empty emulator.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).read()

    from .patches import assume_role
    from .roles import create_role

    assume_role.LOG_REFUSALS[0] = True
    for spec in args.role_specs:  # nobody else knows the port yet: the backends are ours alone
        create_role(spec)
    if args.certificates:
        from .certificates import create_certificates

        write_atomically(args.certificates, create_certificates(args.certificate_accounts))
    if args.port_file:
        write_atomically(args.port_file, f"{port}\n")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"emulator: ready on {endpoint} (moto {moto.__version__}, {len(PATCHES)} patches proven in "
          f"{proofs_done - started:.1f}s, ready in {time.monotonic() - started:.1f}s using "
          f"{time.process_time() - cpu_started:.1f}s of CPU, {len(args.role_specs)} roles, "
          f"{len(args.certificate_accounts)} certificates)", flush=True)
    while not stop.wait(0.2):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
