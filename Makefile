# The README's two commands: `make demo` and `make test`. Each sets up .venv on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ganimate-installed
DEMO_RUN ?= runs/demo
# On the project's machines the datasets lie in ../shared/datasets; elsewhere MNIST is downloaded.
ifeq ($(origin GANIMATE_DATA),undefined)
ifneq ($(wildcard ../shared/datasets/mnist),)
export GANIMATE_DATA := $(abspath ../shared/datasets)
endif
endif

.PHONY: demo test lint bench clean

# compileall: an editable install leaves ganimate uncompiled, and where PYTHONDONTWRITEBYTECODE is set (as on
# the project's machines) every command would compile it again, about 0.3 s of each start-up; so the bytecode
# is written once, as pip does when it installs a wheel.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

demo: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/ganimate train --preset demo --sample-every 200 --out $(DEMO_RUN) --overwrite && \
	$(BIN)/ganimate video $(DEMO_RUN) --source all --fps 8 && \
	$(BIN)/ganimate interpolate $(DEMO_RUN) --morph-classes all --grid 2x5 --frames-per-transition 16 && \
	$(BIN)/ganimate evaluate $(DEMO_RUN) && \
	$(BIN)/ganimate report $(DEMO_RUN) >/dev/null && \
	echo "demo finished in $$(( $$(date +%s) - start )) s; run folder $(DEMO_RUN): reals.png, samples/," \
		"checkpoints/, videos/training.mp4, videos/training.gif, videos/morph.mp4, metrics.jsonl, plots/" && \
	echo "the run report (open it in a browser): $(DEMO_RUN)/report.html"

# ruff, then pytest (tests/test_layers.py holds the import contract and the start-up check)
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs build *.egg-info
