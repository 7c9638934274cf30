"""The alert list page, `GET /alerts`, and `/`, which leads there.

What is on fire comes first: firing alerts, then resolved ones, each newest-started first,
with what triage found on each row so the list itself answers "what is it". Filters are
a plain GET form, so they work without JavaScript and the URL can be shared; the status
chips count what each status would show under the other filters. Pages are keyset
(Older/Newer cursors), so a page does not shift while new alerts arrive.

Query parameters are read by hand rather than declared on the route: a bad one must give
this page with a readable message and status 400, not the API's problem+json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.datastructures import QueryParams
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from oncallm.errors import BadRequest
from oncallm.state import AppState, app_state
from oncallm.store import queries
from oncallm.web.templating import templates

router = APIRouter(include_in_schema=False)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Above this many distinct values a filter is a text box: nobody scrolls a 300-item select.
MAX_CHOICES = 40
MAX_VALUES = 20  # values of one filter in one URL
MAX_TEXT = 255  # the longest stored alertname/namespace/cluster
MAX_QUERY = 200
# Severities sort by urgency in the select, not alphabetically; others follow by name.
SEVERITY_RANK = {"critical": 0, "error": 1, "high": 1, "warning": 2, "medium": 2, "info": 3}


@dataclass(frozen=True)
class ListRequest:
    """The list as the URL asks for it, validated."""

    flt: queries.AlertFilter
    limit: int = DEFAULT_LIMIT
    after: str | None = None
    before: str | None = None

    @property
    def filtered(self) -> bool:
        f = self.flt
        return bool(f.status or f.alertname or f.namespace or f.severity or f.cluster or f.q)

    def url(self, **changes: Any) -> str:
        """This list's URL with some parts changed; empty parts are left out so links
        stay short enough to paste into a chat."""
        target = replace(self, **changes) if changes else self
        f = target.flt
        pairs: list[tuple[str, str]] = []
        for name in ("status", "severity", "cluster", "namespace", "alertname"):
            pairs += [(name, v) for v in getattr(f, name)]
        if f.q:
            pairs.append(("q", f.q))
        if target.limit != DEFAULT_LIMIT:
            pairs.append(("limit", str(target.limit)))
        if target.after:
            pairs.append(("after", target.after))
        if target.before:
            pairs.append(("before", target.before))
        return "/alerts" + (f"?{urlencode(pairs)}" if pairs else "")

    def with_status(self, status: str | None) -> str:
        flt = replace(self.flt, status=(status,) if status else ())
        return self.url(flt=flt, after=None, before=None)


def _text_values(params: QueryParams, name: str) -> tuple[str, ...]:
    # A GET form sends every field, the empty "Any" choices included: empty means unset.
    values = tuple(dict.fromkeys(v.strip() for v in params.getlist(name) if v.strip()))
    if len(values) > MAX_VALUES:
        raise BadRequest(f"{name}: at most {MAX_VALUES} values")
    for value in values:
        if len(value) > MAX_TEXT:
            raise BadRequest(f"{name}: a value is longer than {MAX_TEXT} characters")
        if "\x00" in value:
            raise BadRequest(f"{name}: a value contains a NUL character")
    return values


def parse_list_request(params: QueryParams) -> ListRequest:
    """The URL's filters and page, or BadRequest saying which parameter is wrong and why."""
    status = _text_values(params, "status")
    unknown = [s for s in status if s not in queries.STATUS_ORDER]
    if unknown:
        raise BadRequest(f"status {unknown[0]!r} is not one of: firing, resolved")
    q = (params.get("q") or "").strip() or None
    if q is not None and (len(q) > MAX_QUERY or "\x00" in q):
        raise BadRequest(f"search: at most {MAX_QUERY} characters, no NUL")
    raw_limit = (params.get("limit") or "").strip()
    limit = DEFAULT_LIMIT
    if raw_limit:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
    after = params.get("after") or None
    before = params.get("before") or None
    if after and before:
        raise BadRequest("give either after (older) or before (newer), not both")
    for cursor in (after, before):
        if cursor is not None:
            if len(cursor) > 128:
                raise BadRequest("cursor is not one this list gave out")
            queries.ListPosition.decode(cursor)
    flt = queries.AlertFilter(
        status=status,
        alertname=_text_values(params, "alertname"),
        namespace=_text_values(params, "namespace"),
        severity=_text_values(params, "severity"),
        cluster=_text_values(params, "cluster"),
        q=q,
    )
    return ListRequest(flt, limit, after, before)


_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def word_breaks(name: str) -> Markup:
    """An alertname with a line-break opportunity at each CamelCase word:
    KubePersistentVolumeFillingUp wraps as words on a phone, not mid-word."""
    return Markup("<wbr>").join(_WORD_START.split(name))  # join escapes each part


def shown_count(n: int) -> str:
    """Counts stop at queries.COUNT_CAP (counting all of a long history on every load
    would make the page slow), so more reads as "10,000+"."""
    return f"{queries.COUNT_CAP:,}+" if n > queries.COUNT_CAP else f"{n:,}"


templates.env.filters["count"] = shown_count
templates.env.filters["word_breaks"] = word_breaks


def _choices(available: list[str] | None, selected: tuple[str, ...], name: str) -> list[str] | None:
    if available is None:
        return None
    # A value in the URL that no stored alert has (yet) stays selectable, so the form
    # does not silently drop part of a shared link.
    values = available + [v for v in selected if v not in available]
    if name == "severity":
        values.sort(key=lambda v: (SEVERITY_RANK.get(v.lower(), 9), v))
    return values


@router.get("/", response_class=RedirectResponse)
async def index() -> RedirectResponse:
    return RedirectResponse("/alerts", status_code=307)


@router.get("/alerts", response_class=HTMLResponse)
async def alert_list(
    request: Request, state: Annotated[AppState, Depends(app_state)]
) -> HTMLResponse:
    try:
        wanted = parse_list_request(request.query_params)
        page = await queries.list_alerts_firing_first(
            state.db,
            wanted.flt,
            wanted.limit,
            state.base_url,
            after=wanted.after,
            before=wanted.before,
        )
    except BadRequest as exc:
        context: dict[str, Any] = {"error": exc.detail}
        return templates.TemplateResponse(request, "alerts.html", context, status_code=400)
    available = await queries.filter_choices(state.db, MAX_CHOICES)
    choices = {
        name: _choices(available[name], getattr(wanted.flt, name), name)
        for name in queries.FILTER_COLUMNS
    }
    context = {
        "page": page,
        "wanted": wanted,
        "choices": choices,
        "total": sum(page.counts.values()),
        "matching": sum(
            n for s, n in page.counts.items() if not wanted.flt.status or s in wanted.flt.status
        ),
        # No alertname at all means nothing was ever received: a fresh install.
        "fresh": available["alertname"] == [],
        "webhook_url": f"{state.base_url}/api/v1/alerts/alertmanager",
        "now": datetime.now(UTC),
    }
    return templates.TemplateResponse(request, "alerts.html", context)
