# The two commands of the README: `make run` and `make test`. Both build .venv from nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run test test-fast test-onednn-off lint format docs bench clean chromium

# Re-install whenever pyproject.toml is newer than the last install (a stale venv).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/weightlab run configs/bias-vs-no-bias.yaml
	$(BIN)/weightlab compare
	$(BIN)/weightlab report -o weightlab-report.html

test: venv chromium
	$(BIN)/python -m pytest

test-fast: venv chromium
	$(BIN)/python -m pytest -m "not keras"

# The report's browser test drives Debian's chromium (never a downloaded browser): installed here
# when missing, with sudo unless we are root.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The tests that train, with TensorFlow's oneDNN kernels off: other kernels, other last bits, a
# cheap stand-in for another CPU. `make test` runs the default (on); both must pass.
test-onednn-off: venv
	TF_ENABLE_ONEDNN_OPTS=0 $(BIN)/python -m pytest -m keras

lint: venv
	$(BIN)/ruff check weightlab tests benchmarks
	$(BIN)/mypy weightlab

format: venv
	$(BIN)/ruff format weightlab tests
	$(BIN)/ruff check --fix weightlab tests

# The docs site (mkdocs.yml, docs/) into site/; --strict turns a broken link or anchor into an
# error. The generated parts of docs/ are refreshed with
# `$(BIN)/python -m cogapp -r docs/config.md docs/commands.md` (a test checks they are current).
docs: venv
	$(BIN)/mkdocs build --strict

clean:
	rm -rf site $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# One script per speed target, then the other issues' scripts; each prints its figures.
bench: venv
	$(BIN)/python benchmarks/bench_snapshots.py
	$(BIN)/python benchmarks/bench_tiny.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_storage.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_resume_state.py
	$(BIN)/python benchmarks/bench_listing.py
	$(BIN)/python benchmarks/bench_sweeps.py
	$(BIN)/python benchmarks/bench_compare.py
	$(BIN)/python benchmarks/bench_see.py
	$(BIN)/python benchmarks/bench_smoke.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_vectorized.py
