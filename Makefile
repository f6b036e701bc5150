# The two commands a new user needs: `make demo` and `make test`.
# Both build .venv from the pinned lock file on first use.
# Bytecode is compiled at install time: some machines set PYTHONDONTWRITEBYTECODE,
# and without .pyc files every process would recompile pandas, scikit-learn...

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lock bench clean edge-web

# The browser runner of `shipyard export --target edge` vendors onnxruntime-web from
# the npm registry (pinned with its integrity hash in package-lock.json) into the
# package's data folder; `make venv` installs it, the wheel ships it.
EDGE_WEB := src/shipyard/deploy/edge_web
ORT_DIST := $(EDGE_WEB)/node_modules/onnxruntime-web/dist
EDGE_STAMP := $(EDGE_WEB)/vendor/.installed

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) $(EDGE_STAMP)

$(EDGE_STAMP): $(EDGE_WEB)/package.json $(EDGE_WEB)/package-lock.json
	cd $(EDGE_WEB) && npm ci --ignore-scripts --no-audit --no-fund --silent
	mkdir -p $(EDGE_WEB)/vendor
	cp $(ORT_DIST)/ort.wasm.min.js $(ORT_DIST)/ort-wasm-simd-threaded.mjs \
		$(ORT_DIST)/ort-wasm-simd-threaded.wasm $(EDGE_WEB)/vendor/
	cp $(EDGE_WEB)/node_modules/onnxruntime-web/package.json $(EDGE_WEB)/vendor/onnxruntime-web.package.json
	touch $(EDGE_STAMP)

edge-web: $(EDGE_STAMP)

demo: $(STAMP) $(EDGE_STAMP)
	$(BIN)/shipyard quickstart

test: $(STAMP) $(EDGE_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache

# Re-pin every dependency after editing pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

bench: $(STAMP)
	$(BIN)/python bench/serving.py

clean:
	rm -rf $(VENV) .shipyard
