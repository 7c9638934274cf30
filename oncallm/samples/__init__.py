"""Bundled samples: Alertmanager notifications and the cluster they are about.

`make demo` posts the notifications and triages them against ``cluster/``, a snapshot of
cluster prod-eu-1 with several broken workloads; tests use both.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any


def sample_names() -> list[str]:
    return sorted(p.name for p in files(__package__).iterdir() if p.name.endswith(".json"))


def load_sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(files(__package__).joinpath(name).read_text("utf-8"))
    return data


SAMPLE_CLUSTER_NAME = "prod-eu-1"


def sample_cluster() -> Path:
    """The bundled snapshot directory the sample alerts are about."""
    return Path(str(files(__package__).joinpath("cluster")))
