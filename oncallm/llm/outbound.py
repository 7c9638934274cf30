"""What may leave OncallM: the triage context and result with every value redacted.

Redaction happens on the raw values — each event message, log line, object, label and
finding summary on its own — *before* the digest formats, prefixes and clips them. Done
afterwards, a prefix (``Warning FailedCall (x2): X-Api-Key: …``) hides a header that starts
the message, and a clip (`` … ``) cuts a private key in two so neither half looks like
one. Ids and object references are left alone: they are how the model cites, and
``llm.redact_object_names`` replaces names in the rendered prompt as a whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from oncallm.llm.redaction import Redactor
from oncallm.triage.context import TriageContext

# Result fields whose text reaches the prompt; ids, categories and numbers stay as they are.
_RESULT_TEXT = ("summary", "excerpt", "detail", "title", "error")


def redact_context(ctx: TriageContext, redactor: Redactor) -> TriageContext:
    alert = dataclasses.replace(
        ctx.alert,
        labels={k: redactor.redact(v) for k, v in ctx.alert.labels.items()},
        annotations={k: redactor.redact(v) for k, v in ctx.alert.annotations.items()},
    )
    return dataclasses.replace(
        ctx,
        alert=alert,
        objects={ref: redactor.redact_object(obj) for ref, obj in ctx.objects.items()},
        events={
            ref: tuple(dataclasses.replace(e, message=redactor.redact(e.message)) for e in evs)
            for ref, evs in ctx.events.items()
        },
        logs={
            key: dataclasses.replace(
                excerpt,
                # whole, so a key or header spanning lines is seen as one
                lines=tuple(redactor.redact("\n".join(excerpt.lines)).split("\n")),
            )
            for key, excerpt in ctx.logs.items()
        },
        dependencies=tuple(
            dataclasses.replace(d, line=redactor.redact(d.line)) for d in ctx.dependencies
        ),
        gaps=tuple(dataclasses.replace(g, error=redactor.redact(g.error)) for g in ctx.gaps),
    )


def redact_result(result: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """A copy of the result whose free text is redacted; the original is not touched."""

    def clean(value: Any, key: str | None = None) -> Any:
        if isinstance(value, Mapping):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v, key) for v in value]
        if isinstance(value, str) and key in _RESULT_TEXT:
            return redactor.redact(value)
        return value

    return {k: clean(v, k) for k, v in result.items() if k != "llm"}
