# Two entry points (see README.md): `make book` builds the book, `make test` runs every check.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CI pins the tested torch pair; elsewhere pip picks the right torch for the machine.
TORCH_PIN := $(if $(CI),torch==2.14.1 torchvision==0.29.1,)
# Prepared CIFAR cache: $GUMBEL_LITE_DATA if set, else a git-ignored folder.
export GUMBEL_LITE_DATA := $(abspath $(or $(GUMBEL_LITE_DATA),.cache/data))
OFFLINE_DATASETS := ../shared/tools/materialize_datasets.py
# Debian/Ubuntu packages (Chromium for the browser check) need root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: book test install data lint unit notebooks nbval students colab device-check browser benchmark clean

book: install
	bash scripts/build_book.sh

# Every check CI runs: lint, unit tests, notebooks (smoke), nbval, student and Colab editions,
# the GPU machine's device script rehearsed on the CPU, book build, browser test.
test: install data lint unit notebooks nbval students colab device-check book browser

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_PIN),$(BIN)/pip install -q $(TORCH_PIN))
	$(BIN)/pip install -q -e ".[book,test,cluster]"
	touch $(STAMP)

# Real CIFAR-10/100 in the prepared-cache layout: from the offline copy when present, else downloaded.
data: install
	@if [ -f "$(GUMBEL_LITE_DATA)/cifar10/meta.json" ] && [ -f "$(GUMBEL_LITE_DATA)/cifar100/meta.json" ]; then \
		echo "datasets ready in $(GUMBEL_LITE_DATA)"; \
	elif [ -f "$(OFFLINE_DATASETS)" ]; then \
		$(BIN)/python $(OFFLINE_DATASETS) --out "$(GUMBEL_LITE_DATA)" > /dev/null; \
	else \
		$(BIN)/python -m gumbel_lite prepare cifar10 --download --data-root "$(GUMBEL_LITE_DATA)" && \
		$(BIN)/python -m gumbel_lite prepare cifar100 --download --data-root "$(GUMBEL_LITE_DATA)"; \
	fi

lint: install
	$(BIN)/ruff check gumbel_lite tests scripts book
	$(BIN)/python scripts/notebook_header.py --check
	$(BIN)/python scripts/make_colab_notebooks.py --check
	$(BIN)/python scripts/exercise_table.py --check

unit: install data
	$(BIN)/pytest -q

# papermill executes every notebook with SMOKE=True (outputs go to a temp dir).
notebooks: install data
	$(BIN)/python scripts/run_notebooks.py

# nbval re-runs the notebooks and compares the cells tagged nbval-check-output.
nbval: install data
	$(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with book/nbval_sanitize.cfg book/

# Student copies (solutions removed) are generated and each is executed in smoke mode; a lab
# (nbgrader format) is graded instead: instructor version full marks, student copy none.
students: install data
	$(BIN)/python scripts/make_student_notebooks.py --check

# Colab editions run as on Colab: alone in an empty folder, the install cell cloning this
# repository and installing the package from it (smoke mode).
colab: install data
	$(BIN)/python scripts/check_colab.py 02 09 10

# The script a GPU machine runs (scripts/device_check.sh), rehearsed here on the CPU in seconds.
device-check: install data
	PYTHON=$(BIN)/python bash scripts/device_check.sh --device cpu --smoke

# Playwright (test extra) drives the system's headless Chromium, never a downloaded one, through
# the built pages: math typeset offline, figures loaded, no request leaving the machine, screenshots kept.
browser: book
	@command -v chromium > /dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium > /dev/null)
	$(BIN)/python scripts/browser_check.py

benchmark: install
	$(BIN)/python scripts/benchmark.py

clean:
	rm -rf _build students .pytest_cache
