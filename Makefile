# The two entry points of the README. Each runs the setup script first.
.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo: setup
	node dist/src/cli/main.js demo

test: setup
	npm test

bench: setup
	node scripts/run-benches.mjs
