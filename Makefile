# The two commands README promises: `make demo` and `make test`. Both build .venv if it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PY := .venv/bin/python
# This machine's pip config names local index folders that may be absent; drop those warnings only.
QUIET_WARN := sed '/is ignored: it is neither a file nor a directory/d'
PIP_QUIET := -q --disable-pip-version-check --no-warn-script-location

.PHONY: venv demo test bench clean

venv: .venv/.installed

.venv/.installed: requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install $(PIP_QUIET) -r requirements.txt 2>&1 | $(QUIET_WARN)
	$(PY) -c "import jax, flax, optax, orbax.checkpoint, transformers, torch, safetensors, mathvlm"
	touch $@

demo: venv
	$(PY) -m mathvlm.demo --out out/demo

test: venv
	$(PY) -m pytest -n 2 --dist load

bench: venv
	$(PY) -m benchmarks.model_stack

clean:
	rm -rf out .pytest_cache
