# stackgate: the two commands of the README, and a few conveniences.
.PHONY: demo test bench fmt lint

## Start the portal on SQLite with the local OIDC provider and AWS emulator (http://127.0.0.1:8080).
demo:
	./tests/harness/demo.sh

## Run the whole test suite on real components (installs what it needs, project-local).
test:
	./tests/harness/run-tests.sh

## The page benchmark (release build, wrk): BENCH_REQUESTS=1000000 make bench for a million.
bench:
	./bench/run.sh

fmt:
	cargo fmt --all

lint:
	cargo clippy --all-targets -- -D warnings
