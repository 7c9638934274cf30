"""Bundled sample Alertmanager notifications, posted by `make demo` and used by tests."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def sample_names() -> list[str]:
    return sorted(p.name for p in files(__package__).iterdir() if p.name.endswith(".json"))


def load_sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(files(__package__).joinpath(name).read_text("utf-8"))
    return data
