# The two commands a user runs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    ?= demo
# where `make ablation` runs its cells, e.g. SWEEP_ARGS="--jobs 4" on a 4-GPU server, or
# SWEEP_ARGS="--executor slurm --partition gpu --time-min 720 --gpus-per-cell 1 --no-wait" on a Slurm login node
SWEEP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo ablation pretrained test test-unit test-notebooks lint typecheck venv nbstripout clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@$(MAKE) --no-print-directory nbstripout
	@touch $(STAMP)

## nbstripout: install the git filter that .gitattributes names, so a notebook saved with outputs is committed without
## them (into this clone's .git/config; `make venv` runs it; outside a git checkout there is nothing to install). The
## index is refreshed once, so `git status` need not run the filter on every notebook each time.
nbstripout:
	@test -x $(PY) || { echo "$(PY) is missing: run make venv (it installs the filter too)"; exit 1; }
	@if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$$(pwd -P)" ]; then \
		$(PY) -m nbstripout --install --attributes .gitattributes && \
		git update-index -q --refresh >/dev/null; \
		echo "git filter nbstripout installed: notebooks are committed without their outputs"; \
	else echo "not a git checkout: no nbstripout filter installed"; fi

## demo: write the synthetic dataset, train, evaluate and render the report into reports/$(RUN)/
demo: $(STAMP)
	$(PY) -m idkl_lib.pipeline --run-dir reports/$(RUN) --preset demo

## ablation: the ablation study, five sweeps (README "Ablation study": hours on a 2-core CPU). Re-running it resumes;
## a failed cell is listed in its sweep's results.csv and the other cells and sweeps go on. The reference-rate sweep,
## the longest and the one that trains nothing from random initialisation, comes last.
ablation: $(STAMP)
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/ablation-demo --experiment experiments/ablation.yaml --resume $(SWEEP_ARGS)
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/ablation-batch120 --experiment experiments/ablation_batch120.yaml --resume $(SWEEP_ARGS)
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/ablation-lr --experiment experiments/ablation_lr.yaml --resume $(SWEEP_ARGS)
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/knob --experiment experiments/knob.yaml --resume $(SWEEP_ARGS)
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/ablation-reference --experiment experiments/ablation_reference.yaml --resume $(SWEEP_ARGS)

## pretrained: the pretrained-start study (docs/results.md section 6): exploration, the demo's batch, confirmation,
## then notebooks 04/05 on each seed's IDKL and baseline models (section 6.5)
pretrained: $(STAMP)
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/pretrained --experiment experiments/pretrained.yaml --resume
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/pretrained-demo-batch --experiment experiments/pretrained_demo_batch.yaml --resume
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/pretrained-confirm --experiment experiments/pretrained_confirm.yaml --resume
	-$(PY) -m idkl_lib.experiments.sweep --run-dir reports/pretrained-demo-batch-confirm --experiment experiments/pretrained_demo_batch_confirm.yaml --resume
	-$(PY) -m idkl_lib.experiments.views reports/pretrained-demo-batch-confirm --idkl full@small_batch --out reports/pretrained-demo-batch-confirm-views -p 04_gradcam.num_queries 16
	-$(PY) -m idkl_lib.experiments.views reports/pretrained-confirm --idkl full --out reports/pretrained-confirm-views -p 04_gradcam.num_queries 16
	-$(PY) -m idkl_lib.experiments.views reports/pretrained-demo-batch --idkl full@small_batch --out reports/pretrained-demo-batch-views -p 04_gradcam.num_queries 16
	-$(PY) -m idkl_lib.experiments.views reports/pretrained --idkl full --out reports/pretrained-views -p 04_gradcam.num_queries 16

## test: the whole suite (unit, multi-process and notebook tests), one worker per CPU core (pytest-xdist); each test
## file stays on one worker, so the pipeline runs and trained checkpoints a file shares are made once
XDIST  ?= -n auto --dist loadfile
test: $(STAMP)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not notebooks and not slow" $(PYTEST_ARGS)

test-notebooks: $(STAMP)
	$(PY) -m pytest -m notebooks $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check idkl_lib tests benchmarks
	$(PY) -m ruff format --check idkl_lib tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

clean-venv:
	-@git config --remove-section filter.nbstripout 2>/dev/null; git config --remove-section diff.ipynb 2>/dev/null; true
	rm -rf $(VENV)
