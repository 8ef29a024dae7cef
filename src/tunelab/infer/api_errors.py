"""The API server's errors as OpenAI sends them, and an OpenAPI document that says so.

FastAPI answers a body that fails validation with 422 and documents 422; OpenAI (and its client,
which maps 400 to BadRequestError) use 400. Here every error is OpenAI's JSON shape with OpenAI's
status, and /openapi.json lists exactly the statuses the server sends. /docs and /openapi.json sit
behind the API key when there is one (unless the server runs with --public-docs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunelab.infer.api_schema import APIError, ErrorResponse, error_body

__all__ = ["ERROR_RESPONSES", "STREAMED_OK", "install_error_handlers", "json_error_message", "protected_docs"]

_WHY = {
    400: "Invalid request (bad JSON, a value out of range, an unsupported parameter, a prompt longer "
    "than the context: code context_length_exceeded)",
    401: "Missing or wrong API key",
    404: "Unknown model (code model_not_found) or route",
    413: "Request body larger than --max-body-bytes",
    429: "Too many requests waiting (--max-waiting); see the Retry-After header",
    504: "The request ran past --request-timeout",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": why} for status, why in _WHY.items()
}

# the generation endpoints answer JSON, or server-sent events when the request says "stream": true
STREAMED_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The completion (JSON), or with stream=true its chunks as server-sent events",
        "content": {
            "application/json": {},
            # before OpenAPI 3.2, an event stream's `schema` describes each event
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "data": {"type": "string", "description": "a JSON chunk; the last is [DONE]"}
                    },
                    "required": ["data"],
                }
            },
        },
    }
}


def json_error_message(body: bytes, position: int, reason: str) -> str:
    """'...is not valid JSON: <reason> at line L, column C' for a decode error at `position`."""
    try:
        json.loads(body)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            reason, line, column = exc.msg, exc.lineno, exc.colno
            return f"The request body is not valid JSON: {reason} at line {line}, column {column} (character {exc.pos})."
    prefix = body[:position].decode("utf-8", "replace")
    line, column = prefix.count("\n") + 1, position - (prefix.rfind("\n") + 1) + 1
    return f"The request body is not valid JSON: {reason} at line {line}, column {column} (character {position})."


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the server in OpenAI's JSON shape, with OpenAI's status."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") == "json_invalid":
            body = request.scope.get("tunelab", {}).get("body", b"")
            position = int(loc[0]) if loc and loc[0].isdigit() else 0
            reason = str((first.get("ctx") or {}).get("error", "JSON decode error"))
            return JSONResponse(
                error_body(json_error_message(body, position, reason), "invalid_request_error"), 400
            )
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        if param is None:  # the body itself is not an object
            message = "The request body must be a JSON object, sent with Content-Type: application/json."
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(
            error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with its 422 replaced by the 400 the server really sends."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for methods in spec.get("paths", {}).values():
            for operation in methods.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            spec.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = spec
    return app.openapi_schema


def protected_docs(app: FastAPI, authorize: Callable[..., None] | None) -> None:
    """Serve /openapi.json and /docs, behind `authorize` when given."""
    guard = [Depends(authorize)] if authorize is not None else []

    @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
    def openapi_json() -> JSONResponse:
        return JSONResponse(_openapi(app))

    @app.get("/docs", include_in_schema=False, dependencies=guard)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
