"""stackgate's AWS emulator: moto server with patches for its bugs, each proven at start-up.

    PYTHONPATH=tests/harness .venv-moto/bin/python -m emulator --port 0 --port-file F --roles roles.json

`__main__` runs it; `registry` lists the patches in order; `patches/` holds one module per patch
(`NAME`, a docstring naming the moto bug, `apply()`, `prove(ctx)`); `proof` is what proofs share.
README.md has the layout, every patch and proof, and what the emulator does not model.
"""

MOTO_VERSION = "5.2.5"
