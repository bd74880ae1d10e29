# The two commands a newcomer needs: `make run` (the whole pipeline) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch build this project is developed against; override for another CUDA/CPU build:
#   make TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# The lock file: every other dependency pinned, resolved for this target (make lock refreshes it)
LOCK        ?= requirements.lock
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
# torch, torchvision and what only they pull in (CUDA runtime wheels, triton) stay out of the
# lock: $(TORCH) installs them, so another build (CPU, another CUDA) keeps working
LOCK_SKIP   := torch|torchvision|triton|nvidia-[a-z0-9-]*|cuda-[a-z0-9-]*
# a worker per core, whole test files each (the tests of a file share fixtures and run in order)
PYTEST_ARGS ?= -n auto --dist loadfile

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test install lock repro clean-outputs study

install: $(VENV)/.installed

# the exact versions of $(LOCK), no resolver run (--no-deps), then pip check says they fit.
# pip unpacks only (--no-compile); compileall then writes the bytecode on every core (pip compiles on
# one), skipping the packages' own test suites, which nothing imports. The bytecode is written up front on
# purpose: where PYTHONDONTWRITEBYTECODE is set (this project's CI machines) Python never caches it, and
# without it every process compiled torch's modules again at each start (docs/speed.md). The venv's own
# pip (Python 3.11's) installs a lock with --no-deps as well as a newer one: no upgrade step.
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile $(TORCH)
	$(BIN)/python -m pip install -q --no-compile --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/|/testing/_internal/' \
	    $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	$(BIN)/python -m pip check
	touch $@

## re-resolve $(LOCK) from pyproject.toml (newest versions within its ranges, torch as $(TORCH))
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	printf '%s\n' $(TORCH) > $(VENV)/torch-pins.txt
	skip=$$($(BIN)/uv pip compile -q pyproject.toml --extra dev $(LOCK_TARGET) -c $(VENV)/torch-pins.txt \
	        --no-header --no-annotate | sed -nE 's/^($(LOCK_SKIP))==.*/--no-emit-package \1/p'); \
	$(BIN)/uv pip compile -q pyproject.toml --extra dev $(LOCK_TARGET) -c $(VENV)/torch-pins.txt \
	        $$skip --custom-compile-command 'make lock' -o $(LOCK)

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
