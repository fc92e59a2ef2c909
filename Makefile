# Every checkout answers: make install, make test, make bench.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
APT_PACKAGES := prometheus chromium

.PHONY: install test-deps test bench

install:
	$(PIP) install -q -e .

# Debian packages the integration tests drive for real: Prometheus + promtool, headless Chromium.
test-deps: install
	$(PIP) install -q -e '.[test]'
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: test-deps
	$(PYTHON) -m pytest

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done
