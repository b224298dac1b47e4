"""One module per patch: `NAME`, a docstring (what real AWS does, what moto 5.2.5 does, what the
patch changes), `apply()` and `prove(ctx)`. `emulator.registry` lists them in order."""
