# Every target creates/uses .venv and installs what it needs, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
DATA ?= $(or $(DIGITS_MNIST_DATA),$(wildcard ../shared/data/mnist-full),$(wildcard ../shared/data/mnist))

.PHONY: serve train train-full test lint format clean help openapi bench protos

help:
	@echo "make serve   start the service on the committed model (serve extra only)"
	@echo "make test    run the test suite"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make bench   benchmarks vs the floor, a bare FastAPI app and the peers (BENCH_ARGS=--quick)"
	@echo "make train   retrain into models/, overwriting it (DIGITS_MNIST_DATA=folder, else the Keras download)"
	@echo "make train-full  the committed model's recipe: 2 teachers distilled into one (~1 h 45 min on a 2-core AMD EPYC)"
	@echo "make openapi regenerate openapi.json and openapi.md from the app"
	@echo "make protos  regenerate the gRPC messages in service/grpc/proto"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[serve]"
	@touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[serve,train,dev,batch]"
	@touch $@ $(VENV)/.serve

# Bytecode for the service's modules first, as an installed package has it: an editable
# install has none, and with PYTHONDONTWRITEBYTECODE set every start compiles each module
# again (~0.3 s of the time to ready; the tests start servers often). Only changed files
# are compiled.
serve: $(VENV)/.serve
	$(BIN)/python -m compileall -q service
	$(BIN)/python -m service

train: $(VENV)/.all
	$(BIN)/python -m trainer $(if $(DATA),--data $(DATA)) $(TRAIN_ARGS)

# The committed model: two teachers (16 epochs each) distilled into the served network
# (40 epochs). Teachers are kept in models/.teachers/: an interrupted run resumes after the
# last one finished.
FULL_RECIPE = --teachers 2 --teacher-epochs 16 --epochs 40
train-full: $(VENV)/.all
	$(BIN)/python -m trainer $(if $(DATA),--data $(DATA)) $(FULL_RECIPE) $(TRAIN_ARGS)

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: $(VENV)/.all
	$(BIN)/python -m compileall -q service
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$status

# Scripts, not tests: writes bench/results/latest.{md,png,json}. Under 10 minutes; the
# first run also creates the peers' venvs (bench/.venv-{bentoml,mlserver,litserve}), timed
# apart (`python -m bench.peer` creates them alone).
bench: $(VENV)/.all
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(VENV)/.all
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# openapi.json and openapi.md are generated from the app; a test fails when they drift.
openapi: $(VENV)/.all
	$(BIN)/python -m service.openapi_doc

# The gRPC messages (service/grpc/proto), committed; the protobuf runtime must be at least
# the version that generated them (pyproject's serve extra says which).
protos: $(VENV)/.all
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \
		service/grpc/proto/grpc_predict_v2.proto

format: $(VENV)/.all
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
