"""OpenAPI document details FastAPI cannot infer: problem responses and the webhook body.

Error responses are documented as ``application/problem+json`` with the ``Problem``
schema, so generated clients and schema checks see what the API really returns. The
webhook body is parsed by hand (pydantic's strict JSON parser, see ``routes.ingest``), so
its schema is added to the document here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from oncallm.api.schemas import Problem
from oncallm.ingest.alertmanager import AlertmanagerWebhook

_REF = "#/components/schemas/{model}"
_DESCRIPTIONS = {
    400: "Malformed request (e.g. not JSON, not UTF-8, bad cursor)",
    401: "Missing or wrong webhook credentials",
    404: "Not found",
    413: "Request body too large",
    415: "Body is not sent as application/json",
    422: "Request did not validate; `errors` lists each offending field",
    503: "Database unavailable; nothing was stored, retry later",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {
                "application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}
            },
        }
        for code in codes
    }


WEBHOOK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Alertmanager webhook notification, payload version 4.",
        "content": {
            "application/json": {"schema": {"$ref": _REF.format(model="AlertmanagerWebhook")}}
        },
    }
}


def _component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model, mode in ((Problem, "serialization"), (AlertmanagerWebhook, "validation")):
        schema = model.model_json_schema(by_alias=True, ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(
                _component_schemas()
            )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
