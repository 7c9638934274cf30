"""Browser end-to-end tests (Playwright on Debian Chromium); see conftest.py."""
