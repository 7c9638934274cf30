# OncallM — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test deps uv system-deps browser-deps kubectl-debian lint typecheck check docs bench clean

demo: deps ## start OncallM on its defaults, post the sample alerts, print the URL to open
	$(UV) run oncallm demo

test: system-deps deps ## lint, type-check and run the whole suite (SQLite and PostgreSQL)
	scripts/check
	scripts/test

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

deps: uv
	$(UV) sync --frozen

system-deps: kubectl-debian ## Debian packages of the services the tests start, and axe-core
	@missing=""; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium fonts-liberation"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(MAKE) --no-print-directory browser-deps

# axe-core, which the browser tests inject into pages (tests/support/browser.py), pinned in
# tests/browser/package-lock.json. npm ci installs exactly that into tests/browser/node_modules;
# it runs again only when the lock file is newer than the installed copy.
AXE_CORE := tests/browser/node_modules/axe-core/axe.min.js

browser-deps: $(AXE_CORE)

$(AXE_CORE): tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's kubectl (package kubernetes-client) checks that the Kubernetes API fake is
# faithful. It is unpacked into .tools/ rather than installed: /usr/bin/kubectl may belong
# to another vendor's package (google-cloud-sdk) and the two conflict.
KUBECTL_DEBIAN := .tools/kubernetes-client/usr/bin/kubectl

kubectl-debian: $(KUBECTL_DEBIAN)

$(KUBECTL_DEBIAN):
	@echo "unpacking Debian's kubernetes-client into .tools/"
	@tmp=$$(mktemp -d) && chmod 755 "$$tmp" && cd "$$tmp" && \
	{ apt-get download kubernetes-client >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && apt-get download kubernetes-client >/dev/null; }; } && \
	cd "$(CURDIR)" && rm -rf .tools/kubernetes-client && mkdir -p .tools/kubernetes-client && \
	dpkg-deb -x "$$tmp"/kubernetes-client_*.deb .tools/kubernetes-client && rm -rf "$$tmp"
	@$(KUBECTL_DEBIAN) version --client --short

lint typecheck check: deps
	scripts/check

docs: deps ## regenerate docs/configuration.md from oncallm/config.py
	$(UV) run oncallm config docs > docs/configuration.md

bench: deps ## ingest, gather, metrics, LLM cost and redaction benchmarks (each prints JSON)
	$(UV) run python benchmarks/ingest.py
	$(UV) run python benchmarks/gather.py
	$(UV) run python benchmarks/metrics.py
	$(UV) run python benchmarks/llm_cost.py
	$(UV) run python benchmarks/redaction.py

clean:
	rm -rf .oncallm .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov test-artifacts
