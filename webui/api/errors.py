"""API errors as JSON: 422 names each bad field and why, in FastAPI's ``detail`` shape plus
A1111's ``error``/``errors`` keys, so both kinds of client can read it."""

from __future__ import annotations

from typing import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
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

    async def on_invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes each bad input back, and a NaN or infinity in it cannot be
        # written as JSON (a 500 in place of the 422); the field and the reason are what a client needs.
        items = error.errors()
        detail = [{"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]} for item in items]
        summary = "; ".join(f"{'.'.join(str(p) for p in item['loc'][1:]) or 'body'}: {item['msg']}" for item in items)
        return JSONResponse({"error": "ValidationError", "detail": detail, "errors": summary}, status_code=422)

    app.add_exception_handler(ApiFieldError, on_field_error)
    app.add_exception_handler(RequestValidationError, on_invalid_body)
