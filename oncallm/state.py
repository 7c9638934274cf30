"""What the running app holds: settings, database, and the embedded worker if any."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from oncallm.config import Settings
from oncallm.jobs.worker import Worker
from oncallm.store.db import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    worker_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ingest_in_flight: int = 0
    # Set while no notification is being ingested; an embedded worker waits for it.
    ingest_idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.ingest_idle.set()

    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return self.settings.server.public_url


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.oncallm
    return state
