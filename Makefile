# Every checkout answers: make install, make test, make bench.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
APT_PACKAGES := prometheus chromium

.PHONY: install test-deps baseline-deps test bench

install:
	$(PIP) install -q -e .

# Baseline for the memory comparison (benchmarks/llm_analysis_adapter.py). Not a pyproject extra:
# llm-analysis pins transformers<5 and huggingface-hub<0.15, which it needs only to fetch model configs
# by name, so it is installed without them (pip then prints a dependency-conflict notice; harmless).
# A failed install does not stop `make`: the adapter's tests then fail with the install command.
baseline-deps:
	@$(PIP) install -q --no-deps 'llm-analysis==0.2.2' && $(PIP) install -q 'fire>=0.5,<0.6' \
	  || echo "WARNING: llm-analysis install failed; tests/baselines will fail until it is installed" >&2

# Debian packages the integration tests drive for real: Prometheus + promtool, headless Chromium, tmux (aiinfra top),
# curl (TLS and README examples).
test-deps: install baseline-deps
	$(PIP) install -q -e '.[test]'
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: test-deps
	$(PYTHON) -m pytest

bench: install baseline-deps
	@for b in benchmarks/*.py; do \
	  case $$b in *_adapter.py|benchmarks/_*) continue;; esac; \
	  echo "== $$b"; $(PYTHON) $$b || exit 1; \
	done
