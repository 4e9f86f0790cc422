"""Every error answer of the API (`ErrorBody`, its `Problem`s) and how routes declare them in OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """One problem of a request: `field` is dotted (`training.learning_rate`, `events.0.data.step`)."""

    loc: list[str | int]
    field: str
    msg: str
    type: str | None = None


class ErrorBody(BaseModel):
    """Every error answer of the API: `detail` is a message, or (422) the problems, each naming its field."""

    detail: str | list[Problem]
    type: str = Field(description="unauthorized, forbidden_host, forbidden_origin, too_large, "
                      "unsupported_media_type, invalid_request, invalid_spec, not_found, conflict, unsupported...")
    hint: str | None = None


ERROR_STATUSES: dict[int, str] = {
    400: "a body that is not JSON, or a value the route cannot use (a capture's array that does not fit its "
         "shape)",
    401: "missing or wrong token (`Authorization: Bearer <token>` or the dashboard's cookie)",
    403: "a Host that is not loopback, or a change requested from another origin",
    404: "no such job or capture",
    409: "the request does not fit the job's state",
    413: "the body is over this route's limit",
    415: "a body that is not application/json",
    422: "a body or parameter that does not fit (each problem names its field)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: the error statuses it may answer, each with the ErrorBody."""
    return {status: {"model": ErrorBody, "description": ERROR_STATUSES[status]} for status in statuses}


def with_models(schema: dict[str, Any], *models: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI document with `models` (and the models they use) among its components: for the bodies
    that a route reads itself and declares with a `$ref` (`openapi_extra`)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    return schema
