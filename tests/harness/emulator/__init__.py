"""stackgate's AWS emulator: moto server with patches for its bugs, each proven at start-up.

    PYTHONPATH=tests/harness .venv-moto/bin/python -m emulator --port 0 --port-file F --roles roles.json

Layout: `__main__` (the command line and the server's life), `registry` (the patches in order),
`patches/` (one module per patch: `NAME`, a docstring naming the moto bug, `apply()` and
`prove(ctx)`), `proof` (what proofs share: clients for an assumed account, a change-set runner),
`roles` (the --roles file).
"""

MOTO_VERSION = "5.2.5"
