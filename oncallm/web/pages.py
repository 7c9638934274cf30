"""HTML routes: `/alerts/{fingerprint}` (the link in every notification) and `/alerts`.

Rendered on the server from the same queries as the JSON API, so a page never shows
something the API would not. A fingerprint not seen yet gets a page that says so and
refreshes itself: the notification can reach a phone before the webhook reaches us.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from oncallm import __version__
from oncallm.errors import BadRequest, NotFound, UnsupportedMediaType
from oncallm.ingest.alertmanager import FINGERPRINT_PATTERN
from oncallm.state import AppState, app_state
from oncallm.store import queries
from oncallm.store.notes import add_note
from oncallm.web.charts import charts_by_id, render_chart, render_legend
from oncallm.web.presenters import (
    anchor,
    evidence_html,
    evidence_label,
    incident_summary,
    ordered_evidence,
    ordered_recommendations,
    triage_steps,
)
from oncallm.web.templating import templates

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).parent / "static"
FORM = "application/x-www-form-urlencoded"


templates.env.globals["chart"] = render_chart
templates.env.globals["legend"] = render_legend
templates.env.globals["charts_by_id"] = charts_by_id
templates.env.filters["anchor"] = anchor
templates.env.filters["evidence_label"] = evidence_label
templates.env.globals["evidence_html"] = evidence_html


@router.get("/alerts/{fingerprint}", response_class=HTMLResponse)
async def alert_page(
    request: Request,
    state: Annotated[AppState, Depends(app_state)],
    fingerprint: Annotated[str, PathParam(pattern=FINGERPRINT_PATTERN)],
) -> HTMLResponse:
    alert = await queries.get_alert(state.db, fingerprint, state.base_url)
    if alert is None:
        return templates.TemplateResponse(
            request,
            "not_seen.html",
            {"fingerprint": fingerprint, "static_version": __version__},
            status_code=404,
        )
    return templates.TemplateResponse(request, "alert.html", _page_context(alert))


@router.get("/alerts/{fingerprint}/triage", response_class=HTMLResponse)
async def triage_fragment(
    request: Request,
    state: Annotated[AppState, Depends(app_state)],
    fingerprint: Annotated[str, PathParam(pattern=FINGERPRINT_PATTERN)],
) -> HTMLResponse:
    """The triage part of the page alone: what the page's script swaps in as it runs."""
    alert = await _received(state, fingerprint)
    response = templates.TemplateResponse(request, "_triage.html", _page_context(alert))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/alerts/{fingerprint}/notes", response_class=HTMLResponse)
async def note_form(
    request: Request,
    state: Annotated[AppState, Depends(app_state)],
    fingerprint: Annotated[str, PathParam(pattern=FINGERPRINT_PATTERN)],
) -> Response:
    """The page's note form (works without JavaScript): add, then back to the timeline."""
    if request.headers.get("content-type", "").split(";")[0] != FORM:
        raise UnsupportedMediaType(f"the note form posts {FORM}")
    body = await request.body()
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    try:
        await add_note(
            state.db,
            fingerprint,
            (fields.get("text") or [""])[0],
            (fields.get("author") or [""])[0],
        )
    except BadRequest as exc:
        alert = await _received(state, fingerprint)
        context = _page_context(alert) | {"note_error": exc.detail, "note_text": fields}
        return templates.TemplateResponse(request, "alert.html", context, status_code=400)
    return RedirectResponse(f"/alerts/{fingerprint}#timeline-h", status_code=303)


async def _received(state: AppState, fingerprint: str) -> dict[str, Any]:
    alert = await queries.get_alert(state.db, fingerprint, state.base_url)
    if alert is None:
        raise NotFound(f"no alert with fingerprint {fingerprint}")
    return alert


def _page_context(alert: dict[str, Any]) -> dict[str, Any]:
    triage = alert["triage"]
    result = (triage or {}).get("result") or {}
    return {
        "alert": alert,
        "triage": triage,
        "live": triage is not None and triage["status"] in ("queued", "running"),
        "steps": triage_steps(triage),
        "evidence": ordered_evidence(result),
        "recommendations": ordered_recommendations(result),
        "summary_lines": incident_summary(alert),
        "static_version": __version__,
    }
