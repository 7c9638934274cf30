"""The one Jinja environment of the HTML pages, and the time formats every page shares.

Times are read at a glance on a phone: "12 min ago", "lasted 2 h 5 min", and the exact
UTC time where it matters ("2026-11-26 03:05:00 UTC", also in ``<time>`` titles). One
module owns them so the list, the alert page and the incident summary say a duration the
same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def when(value: datetime | None) -> str:
    """The exact time, in UTC: ``2026-11-26 03:05:00 UTC``."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def iso(value: datetime | None) -> str:
    """For ``<time datetime>``: ``2026-11-26T03:05:00Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'12 min ago' — how an on-call engineer reads a start time at a glance."""
    if value is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 60:
        return "just now"  # also absorbs small clock skew between Alertmanager and us
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} d ago"


def span(start: datetime, end: datetime | None = None) -> str:
    """How long from ``start`` to ``end`` (to now when it has not ended): '42 min',
    '2 h 5 min', '3 d 4 h'."""
    minutes = max(int(((end or datetime.now(UTC)) - start).total_seconds()) // 60, 0)
    if minutes < 60:
        return f"{minutes} min" if minutes else "under a minute"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


templates.env.filters["when"] = when
templates.env.filters["iso"] = iso
templates.env.filters["ago"] = ago
templates.env.globals["duration"] = span
