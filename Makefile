# The two entry points of the README. Each runs the setup script first.
.PHONY: setup demo test

setup:
	bash scripts/setup.sh

demo: setup
	node dist/src/cli/main.js demo

test: setup
	npm test

