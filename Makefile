# The two commands a newcomer needs: `make run` (the whole pipeline) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch build this project is developed against; override for another CUDA/CPU build:
#   make TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# a worker per core, whole test files each (the tests of a file share fixtures and run in order)
PYTEST_ARGS ?= -n auto --dist loadfile

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test install repro clean-outputs study

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

## the whole pipeline on the default (offline) params; a second call runs nothing
run: install
	$(BIN)/dvc repro

## the test suite: offline, CPU only
test: install
	GENLAB_PROGRESS=0 $(BIN)/python -m pytest $(PYTEST_ARGS)

## a study of studies.yaml as queued DVC experiments + its page: make study STUDY=gan_discriminator JOBS=2
STUDY ?= gan_discriminator
JOBS  ?= 1
study: install
	$(BIN)/genlab study run $(STUDY) -j $(JOBS) --report

## remove what can be rebuilt (resume state, DVC outputs `dvc checkout` restores); keeps mlflow.db,
## dvc.lock, metrics and plots. ALL=1 removes those too, after a y/n question (FORCE=1: no question)
clean-outputs:
	$(BIN)/python -m genlab.cli clean $(if $(ALL),--all) $(if $(FORCE),--force)
