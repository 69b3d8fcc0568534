"""API errors as JSON: 422 names each bad field and why, in FastAPI's ``detail`` shape plus
A1111's ``error``/``errors`` keys, so both kinds of client can read it."""

from __future__ import annotations

from typing import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class ApiFieldError(Exception):
    """Bad request fields: (field, reason) pairs; a dotted field is a path ("init_images.0")."""

    def __init__(self, problems: Sequence[tuple[str, str]], status_code: int = 422):
        self.problems = list(problems)
        self.status_code = status_code
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in self.problems))


def field_error(field: str, reason: str) -> ApiFieldError:
    return ApiFieldError([(field, reason)])


def location(field: str) -> list[str | int]:
    return ["body", *(int(part) if part.isdigit() else part for part in field.split("."))]


def error_body(error: ApiFieldError) -> dict:
    return {
        "error": "ValidationError",
        "detail": [{"loc": location(field), "msg": reason, "type": "value_error"} for field, reason in error.problems],
        "errors": str(error),
    }


def add_error_handlers(app: FastAPI) -> None:
    async def on_field_error(request: Request, error: ApiFieldError) -> JSONResponse:
        return JSONResponse(error_body(error), status_code=error.status_code)

    app.add_exception_handler(ApiFieldError, on_field_error)
