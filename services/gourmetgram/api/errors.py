"""Error bodies, their OpenAPI description, and the exception handlers.

Two shapes only: ``{"detail": "<sentence>"}`` (:class:`ErrorMessage`) for every error, and
``{"detail": [{"loc", "msg", "type"}, ...]}`` (:class:`ValidationErrorBody`) for every 422,
whether FastAPI's validation or ours (form fields, empty or undecodable files) refused it.
Bodies never carry internal exception text nor echo the client's input.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gourmetgram.api import store
from gourmetgram.api.schemas import ErrorMessage, ValidationErrorBody
from gourmetgram.common import logs

log = logs.get_logger("api")

_DESCRIPTIONS = {
    400: "Bad request: a body that cannot be parsed (not UTF-8, broken multipart), or a flag naming neither "
    "an image nor a comment",
    404: "A referenced entity does not exist",
    413: "Request body, file or image dimensions over the limit",
    415: "Unsupported file type",
    422: "Validation error: one entry per refused field",
    503: "Database or image storage unavailable, try again later",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these status codes, each with its body model."""
    return {
        code: {"model": ValidationErrorBody if code == 422 else ErrorMessage, "description": _DESCRIPTIONS[code]}
        for code in codes
    }


class FieldError(Exception):
    """A 422 raised by a handler, in the same shape as FastAPI's validation errors."""

    def __init__(self, loc: list[str | int], msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.issue = {"loc": loc, "msg": msg, "type": kind}


def _safe(text: str) -> str:
    """Pydantic messages may quote the input (e.g. the bad character of a UUID): a lone
    surrogate there would make the JSON body unencodable, so escape what UTF-8 cannot carry."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _message(status: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {
                "loc": [_safe(str(p)) if isinstance(p, str) else p for p in e.get("loc", ())],
                "msg": _safe(str(e.get("msg", "")).removeprefix("Value error, ")),
                "type": _safe(str(e.get("type", "value_error"))),
            }
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": issues})

    @app.exception_handler(FieldError)
    async def field_error(_: Request, exc: FieldError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": [exc.issue]})

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        body = {"detail": _safe(str(exc.detail))}
        return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)

    @app.exception_handler(store.NotFound)
    async def not_found(_: Request, exc: store.NotFound) -> JSONResponse:
        return _message(404, exc.message)

    @app.exception_handler(store.BadData)
    async def bad_data(_: Request, exc: store.BadData) -> JSONResponse:
        logs.event(log, "database refused a value", level=30, sqlstate=str(exc))
        return JSONResponse(
            status_code=422,
            content={"detail": [{"loc": ["body"], "msg": "a value cannot be stored", "type": "value_error"}]},
        )

    @app.exception_handler(store.Unavailable)
    async def unavailable(_: Request, exc: store.Unavailable) -> JSONResponse:
        logs.event(log, "database unavailable", level=40, error=str(exc)[:200])
        return _message(503, "Database unavailable, try again later")

    @app.exception_handler(psycopg.Error)
    async def db_error(_: Request, exc: psycopg.Error) -> JSONResponse:
        logs.event(log, "database error", level=40, error=type(exc).__name__, sqlstate=exc.sqlstate)
        return _message(500, "Internal server error")
