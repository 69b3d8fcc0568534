"""``GET /file=<path>``: the files extensions' page scripts fetch, as A1111 serves them.

A1111 (on Gradio 3) answers ``file=<path>`` for files under its program folder, so extensions'
JavaScript reads its own data with ``fetch("file=extensions/<name>/tags/x.csv")`` or with an
absolute path its Python side wrote to ``<program folder>/tmp/`` (tagcomplete does both). Gradio 6
no longer serves that path, so this route does, for far fewer files than A1111: only files inside
an enabled extension's folder or the program's ``tmp`` folder, never a hidden file or folder
(``.git`` holds remote URLs with tokens). Anything else is a 404, whether or not it exists.
The access gate in front of the app guards it like every other path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

from modules.extensions.startup import ExtensionSet


def servable_roots(found: ExtensionSet, program_dir: Path) -> tuple[Path, ...]:
    return tuple(e.path.resolve() for e in found.enabled()) + ((program_dir / "tmp").resolve(),)


def servable_file(requested: str, program_dir: Path, roots: Iterable[Path]) -> Path | None:
    """The file ``requested`` names (relative paths are relative to the program folder, A1111's
    working folder), if it lies inside one of ``roots`` and no part of it is hidden."""
    if "://" in requested or "\x00" in requested:
        return None
    path = Path(requested)
    resolved = (path if path.is_absolute() else program_dir / path).resolve()
    for root in roots:
        if resolved.is_relative_to(root):
            inside = resolved.relative_to(root).parts
            if inside and not any(part.startswith(".") for part in inside) and resolved.is_file():
                return resolved
    return None


def add_extension_file_route(app: FastAPI, found: ExtensionSet, program_dir: Path) -> None:
    roots = servable_roots(found, program_dir)

    def extension_file(path: str) -> FileResponse:
        served = servable_file(path, program_dir, roots)
        if served is None:
            raise HTTPException(status_code=404, detail="Not Found")
        return FileResponse(served, headers={"Cache-Control": "no-cache"})

    app.add_api_route("/file={path:path}", extension_file, methods=["GET", "HEAD"], include_in_schema=False)
