"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from oncallm.api.schemas import Health
from oncallm.errors import StorageUnavailable
from oncallm.observability import QUEUE_DEPTH, REGISTRY
from oncallm.state import AppState, app_state
from oncallm.store import jobs, migrate

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Readiness: database reachable, migrations at head, worker alive",
)
async def readyz(state: Annotated[AppState, Depends(app_state)]) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await state.db.ping()
        checks["database"] = "ok"
        current = await migrate.current_revision(state.db)
        head = migrate.head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except (StorageUnavailable, SQLAlchemyError, OSError) as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    if state.worker is not None:
        alive = state.worker.alive() and not (state.worker_task and state.worker_task.done())
        checks["worker"] = "ok" if alive else "not running"
    else:
        checks["worker"] = "ok (external workers)"
    ready = all(v.startswith("ok") for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: Annotated[AppState, Depends(app_state)]) -> Response:
    try:
        for status, count in (await jobs.queue_depth(state.db)).items():
            QUEUE_DEPTH.labels(status).set(count)
    except (SQLAlchemyError, OSError):
        pass  # the scrape still answers; the gauge keeps its last value
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
