# The two commands: `make run` (set up and start the sandbox at http://127.0.0.1:8000) and
# `make test` (the whole gate). Both install what a fresh machine lacks.
SHELL := /bin/bash
STAMP := .venv/.installed-$(shell cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha1sum | cut -c1-12)

.PHONY: run test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	rm -f .venv/.installed-*
	touch $@

test: setup
	bash scripts/test.sh

run: setup
	.venv/bin/python -m sandbox.run

clean:
	rm -rf .venv var test-artifacts
