# The two commands a user runs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    ?= demo
PYTEST_ARGS ?=

.PHONY: demo ablation pretrained test test-unit test-notebooks lint typecheck venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

## demo: write the synthetic dataset, train, evaluate and render the report into reports/$(RUN)/
demo: $(STAMP)
	$(PY) -m idkl_lib.pipeline --run-dir reports/$(RUN) --preset demo

## ablation: the ablation study, five sweeps (README "Ablation study": hours on a 2-core CPU). Re-running it resumes;
## a failed cell is listed in its sweep's results.csv and the other cells and sweeps go on. The reference-rate sweep,
## the longest and the one that trains nothing from random initialisation, comes last.
ablation: $(STAMP)
	-$(PY) -m idkl_lib.sweep --run-dir reports/ablation-demo --experiment experiments/ablation.yaml --resume
	-$(PY) -m idkl_lib.sweep --run-dir reports/ablation-batch120 --experiment experiments/ablation_batch120.yaml --resume
	-$(PY) -m idkl_lib.sweep --run-dir reports/ablation-lr --experiment experiments/ablation_lr.yaml --resume
	-$(PY) -m idkl_lib.sweep --run-dir reports/knob --experiment experiments/knob.yaml --resume
	-$(PY) -m idkl_lib.sweep --run-dir reports/ablation-reference --experiment experiments/ablation_reference.yaml --resume

## pretrained: the pretrained-start study (docs/results.md section 6): exploration, the demo's batch, confirmation
pretrained: $(STAMP)
	-$(PY) -m idkl_lib.sweep --run-dir reports/pretrained --experiment experiments/pretrained.yaml --resume
	-$(PY) -m idkl_lib.sweep --run-dir reports/pretrained-demo-batch --experiment experiments/pretrained_demo_batch.yaml --resume
	-$(PY) -m idkl_lib.sweep --run-dir reports/pretrained-confirm --experiment experiments/pretrained_confirm.yaml --resume
	-$(PY) -m idkl_lib.sweep --run-dir reports/pretrained-demo-batch-confirm --experiment experiments/pretrained_demo_batch_confirm.yaml --resume

## test: the whole suite (unit, multi-process and notebook tests)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest -m "not notebooks and not slow" $(PYTEST_ARGS)

test-notebooks: $(STAMP)
	$(PY) -m pytest -m notebooks $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check idkl_lib tests benchmarks
	$(PY) -m ruff format --check idkl_lib tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

clean-venv:
	rm -rf $(VENV)
