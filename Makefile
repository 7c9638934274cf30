# OncallM — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := postgresql prometheus prometheus-alertmanager

.PHONY: demo test deps uv system-deps lint typecheck check docs bench clean

demo: deps ## start OncallM on its defaults, post the sample alerts, print the URL to open
	$(UV) run oncallm demo

test: system-deps deps ## lint, type-check and run the whole suite (SQLite and PostgreSQL)
	scripts/check
	scripts/test

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

deps: uv
	$(UV) sync --frozen

system-deps: ## Debian packages of the services the tests start
	@missing=""; \
	command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	fi

lint typecheck check: deps
	scripts/check

docs: deps ## regenerate docs/configuration.md from oncallm/config.py
	$(UV) run oncallm config docs > docs/configuration.md

bench: deps ## ingest benchmark (prints JSON)
	$(UV) run python benchmarks/ingest.py

clean:
	rm -rf .oncallm .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov test-artifacts
