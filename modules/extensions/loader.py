"""Discovers and loads extensions laid out as A1111 lays them out (``extensions/<name>/``).

An extension folder may hold ``metadata.ini`` (``[Extension] Requires/Before/After``, ordering),
``install.py`` (run once at launch unless skipped), ``preload.py`` (``preload(parser)``),
``scripts/*.py`` (each imported as a module named by its file name, with the extension
root on ``sys.path`` while it loads), ``javascript/*.js`` and ``style.css`` (served into the page).
Any failure is recorded on the extension and reported; it never stops the other extensions.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable


@dataclass
class Extension:
    name: str
    path: Path
    enabled: bool = True
    requires: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    errors: list[str] = field(default_factory=list)
    modules: list[ModuleType] = field(default_factory=list)

    def files(self, folder: str, suffix: str) -> list[Path]:
        where = self.path / folder
        return sorted(p for p in where.glob(f"*{suffix}") if p.is_file()) if where.is_dir() else []

    @property
    def stylesheet(self) -> Path | None:
        css = self.path / "style.css"
        return css if css.is_file() else None


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in value.replace(",", " ").split() if part.strip())


def read_metadata(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(requires, before, after) from ``metadata.ini``; A1111 reads them from section [Extension]."""
    ini = path / "metadata.ini"
    if not ini.is_file():
        return (), (), ()
    parser = configparser.ConfigParser()
    parser.read(ini, encoding="utf-8-sig")
    section = parser["Extension"] if parser.has_section("Extension") else {}
    return tuple(_names(section.get(key, "")) for key in ("Requires", "Before", "After"))  # type: ignore[return-value]


def discover(root: Path, disabled: Iterable[str] = (), *, disable_all: bool = False) -> list[Extension]:
    """Every folder under ``root``, in load order; those named in ``disabled`` (or all, with
    ``disable_all``) are listed but not enabled."""
    off = set(disabled)
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []:
        requires, before, after = read_metadata(path)
        found.append(Extension(path.name, path, not disable_all and path.name not in off, requires, before, after))
    return load_order(found)


def load_order(extensions: list[Extension]) -> list[Extension]:
    """Alphabetical, then moved so each extension loads after those it names in After/Requires and
    before those in Before (A1111's topological sort); a cycle keeps the alphabetical order."""
    by_name = {e.name.lower(): e for e in extensions}
    after: dict[str, set[str]] = {name: set() for name in by_name}
    for e in extensions:
        key = e.name.lower()
        after[key] |= {n for n in (*e.after, *e.requires) if n in by_name}
        for n in e.before:
            if n in by_name:
                after[n].add(key)
    ordered: list[Extension] = []
    placed: set[str] = set()
    while len(ordered) < len(extensions):
        ready = [e for e in extensions if e.name.lower() not in placed and after[e.name.lower()] <= placed]
        if not ready:  # a cycle: the rest in alphabetical order
            ready = [e for e in extensions if e.name.lower() not in placed]
        ordered.append(ready[0])
        placed.add(ready[0].name.lower())
    return ordered


def check_requirements(extensions: list[Extension]) -> None:
    """An enabled extension whose Requires names a missing or disabled one is disabled, with why."""
    enabled = {e.name.lower() for e in extensions if e.enabled}
    for e in extensions:
        missing = [n for n in e.requires if n not in enabled]
        if e.enabled and missing:
            e.enabled = False
            e.errors.append(f"requires {', '.join(missing)}, which is not installed or is disabled")


def run_install(extension: Extension, python: str = sys.executable, report: Callable[[str], None] = print) -> bool:
    """Runs ``install.py`` in this interpreter's environment, showing its output; a failure is
    recorded and the extension still loads (A1111 behaves the same)."""
    script = extension.path / "install.py"
    if not script.is_file():
        return True
    # install.py does ``import launch``: the program folder goes on its path
    program = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [program, os.environ.get("PYTHONPATH", "")]))}
    result = subprocess.run([python, str(script)], cwd=extension.path, capture_output=True, text=True, env=env)
    output = (result.stdout + result.stderr).strip()
    if output:
        report(f"[{extension.name}] install.py:\n{output}")
    if result.returncode != 0:
        extension.errors.append(f"install.py exited with {result.returncode}: {output[-500:]}")
        report(f"[{extension.name}] install.py failed (exit {result.returncode}); the extension still loads")
        return False
    return True


def import_file(path: Path, name: str, extra_path: Path) -> ModuleType:
    """Imports ``path`` as module ``name`` with ``extra_path`` first on ``sys.path`` while it runs;
    the file is read as UTF-8 with or without a byte-order mark."""
    source = path.read_text(encoding="utf-8-sig")
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    module.__file__ = str(path)
    sys.path.insert(0, str(extra_path))
    try:
        # dont_inherit: this file's `from __future__ import annotations` must not reach the extension's
        # code (it would turn its annotations into strings, and FastAPI then reads a locally defined
        # pydantic body model as a query parameter).
        exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)
    finally:
        if str(extra_path) in sys.path:
            sys.path.remove(str(extra_path))
    return module


def load_scripts(extension: Extension, report: Callable[[str], None] = print) -> list[ModuleType]:
    """Every ``scripts/*.py`` of an enabled extension; one failing file is recorded, the rest load.
    An extension whose script fails to import is disabled until the next start."""
    for path in extension.files("scripts", ".py"):
        try:
            # named by its file, ".py" included, as A1111 names them: extensions look up the X/Y/Z
            # plot's module by ``script_class.__module__ == "xyz_grid.py"``
            extension.modules.append(import_file(path, path.name, extension.path))
        except Exception:  # the one broad catch: it isolates an extension (DESIGN §8)
            error = f"scripts/{path.name}: {traceback.format_exc(limit=-3)}"
            extension.errors.append(error)
            report(f"[{extension.name}] failed to load {error}")
    if extension.errors:
        extension.enabled = False
    return extension.modules


def run_preload(extension: Extension, parser, report: Callable[[str], None] = print) -> None:
    """Calls ``preload(parser)`` from ``preload.py`` so the extension can add command-line flags."""
    path = extension.path / "preload.py"
    if not path.is_file():
        return
    try:
        module = import_file(path, f"preload_{extension.name}", extension.path)
        if hasattr(module, "preload"):
            module.preload(parser)
    except Exception:  # isolates the extension
        extension.errors.append(f"preload.py: {traceback.format_exc(limit=-3)}")
        report(f"[{extension.name}] preload.py failed:\n{extension.errors[-1]}")
