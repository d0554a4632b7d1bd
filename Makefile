# One word per job. Every target sets up what it needs first (Debian packages, .venv, the project).
.PHONY: setup up demo test test-unit lint format bench soak fuzz clean

VENV := .venv
BIN := $(VENV)/bin

CONSOLE := alerts/console
CONSOLE_SOURCES := $(shell find $(CONSOLE)/web -path '*/node_modules' -prune -o -type f -print 2>/dev/null)

$(VENV)/.installed: pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

$(CONSOLE)/static/index.html: $(CONSOLE_SOURCES) scripts/build-console.sh
	bash scripts/build-console.sh

setup: $(VENV)/.installed $(CONSOLE)/static/index.html  ## install system packages, .venv, the project and the console

up: setup  ## run the whole system on this machine (Ctrl-C stops it)
	$(BIN)/smartcity up

demo: setup  ## the main job: the one-machine stack, a live Longgang fleet and a drill (Ctrl-C stops it)
	$(BIN)/smartcity demo

test: setup  ## every test, against real Mosquitto, Tansu and InfluxDB started by the fixtures
	$(BIN)/pytest

test-unit: setup
	$(BIN)/pytest tests/unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup  ## benchmarks: prints figures and writes bench-results/*.json (see docs/benchmarks.md)
	$(BIN)/smartcity bench ingest
	$(BIN)/smartcity bench registry
	$(BIN)/smartcity bench rules
	$(BIN)/smartcity bench alerts
	$(BIN)/smartcity bench storage
	$(BIN)/smartcity simulate quality
	$(BIN)/smartcity bench e2e

soak: setup  ## 30 minutes at half of W1's peak: memory, lag and latency must stay flat (not part of bench)
	$(BIN)/smartcity bench soak

fuzz: setup  ## the telemetry parser under atheris for 10 minutes (CI runs 30 s: tests/unit/ingest/test_parse_fuzz.py)
	mkdir -p .fuzz-corpus && cp -n tests/fuzz/corpus/* .fuzz-corpus/
	$(BIN)/python -m tests.fuzz.parse_fuzz -max_total_time=600 -rss_limit_mb=1024 -artifact_prefix=.fuzz-corpus/crash- .fuzz-corpus

clean:
	rm -rf $(VENV) .fuzz-corpus .smartcity .pytest_cache .mypy_cache .ruff_cache .hypothesis bench-results drill-reports
