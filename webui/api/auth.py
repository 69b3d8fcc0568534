"""``--api-auth user:pass[,...]``: HTTP Basic on every API route (RFC 7617), compared in constant time."""

from __future__ import annotations

import secrets
from typing import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

_BASIC = HTTPBasic(auto_error=False)


def credentials_match(given: HTTPBasicCredentials, allowed: tuple[tuple[str, str], ...]) -> bool:
    """Every pair is compared, so the time taken does not reveal which user name exists."""
    matched = False
    for user, password in allowed:
        user_ok = secrets.compare_digest(given.username.encode("utf-8"), user.encode("utf-8"))
        password_ok = secrets.compare_digest(given.password.encode("utf-8"), password.encode("utf-8"))
        matched |= user_ok and password_ok
    return matched


def basic_auth(allowed: tuple[tuple[str, str], ...]) -> Callable:
    """A FastAPI dependency that answers 401 with ``WWW-Authenticate: Basic`` unless a pair matches."""

    def check(credentials: HTTPBasicCredentials | None = Depends(_BASIC)) -> None:
        if credentials is None or not credentials_match(credentials, allowed):
            raise HTTPException(status_code=401, detail="Incorrect username or password",
                                headers={"WWW-Authenticate": "Basic"})

    return check
