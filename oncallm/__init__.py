"""OncallM: an on-call copilot for Kubernetes alerts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("oncallm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"
