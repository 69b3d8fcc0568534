"""A1111 compatibility surface: the names of A1111's ``modules.extensions`` (``extensions``,
``active()``, ``Extension``, ``extensions_dir``, ``extensions_builtin_dir``, ``find_extension``,
``extension_paths``), answered through ``modules/extensions/__init__.py`` from the extensions the
bound Runtime found at start (``startup.ExtensionSet``), with git data read as ``manage`` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modules.extensions import loader, manage

_GIT_FIELDS = ("remote", "branch", "commit_hash", "commit_date", "version")


class Extension:
    """One extension as A1111 describes it: ``name``, ``path``, ``enabled``, ``is_builtin``,
    ``metadata``, ``status``, ``can_update``, and its git ``remote``, ``branch``, ``commit_hash``,
    ``commit_date``, ``version`` (read from the clone on first use; None when not a git clone)."""

    def __init__(self, name: str, path: str, enabled: bool = True, is_builtin: bool = False, metadata: Any = None):
        self.name, self.path, self.enabled, self.is_builtin = name, str(path), enabled, is_builtin
        self.metadata = metadata
        self.canonical_name = name.lower()
        self.status = ""
        self.can_update = False
        self.have_info_from_repo = False
        self.errors: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in _GIT_FIELDS:  # only reached before the clone was read
            self.read_info_from_repo()
            return self.__dict__[name]
        raise AttributeError(f"'Extension' object has no attribute {name!r}")

    def read_info_from_repo(self) -> None:
        if self.have_info_from_repo:
            return
        info = manage.describe(Path(self.path), ())
        self.remote = info.remote or None
        self.branch = info.branch or None
        self.commit_hash = info.commit_hash or None
        self.commit_date = info.commit_date or None
        self.version = info.version
        self.have_info_from_repo = True

    def _installed(self) -> manage.InstalledExtension:
        return manage.describe(Path(self.path), () if self.enabled else (self.name,))

    def list_files(self, subdir: str, extension: str) -> list:
        """``subdir/*extension`` of the extension, as ``modules.scripts.ScriptFile``s, by name."""
        from modules.scripts import ScriptFile

        folder = os.path.join(self.path, subdir)
        if not os.path.isdir(folder):
            return []
        return [ScriptFile(self.path, name, os.path.join(folder, name)) for name in sorted(os.listdir(folder))
                if os.path.splitext(name)[1].lower() == extension.lower() and os.path.isfile(os.path.join(folder, name))]

    def check_updates(self) -> None:
        """Fetches and compares with upstream; sets ``can_update`` and ``status`` as A1111 does."""
        try:
            result = manage.check_for_updates(self._installed())
        except manage.ExtensionError as error:
            self.can_update, self.status = False, f"unknown ({error})"
            return
        self.can_update = result.behind > 0
        self.status = "new commits" if self.can_update else "latest"

    def fetch_and_reset_hard(self, commit: str = "origin") -> None:
        """Updates to upstream; here fast-forward only, so local edits are never lost (README)."""
        manage.update(self._installed())
        self.have_info_from_repo = False
        for field in _GIT_FIELDS:
            self.__dict__.pop(field, None)


_view: list = []  # [(the ExtensionSet, its Extension objects)]: one view per set, so status and can_update stick


def _found() -> Any:
    from modules import shared

    runtime = shared.bound_runtime()
    return None if runtime is None else getattr(runtime, "extensions", None)


def _from(found: Any, extension: loader.Extension) -> Extension:
    compat = Extension(extension.name, str(extension.path), extension.enabled, extension.name in found.builtin,
                       {"requires": extension.requires, "before": extension.before, "after": extension.after})
    compat.errors = extension.errors
    return compat


def extensions() -> list[Extension]:
    """Every extension found at start, in load order (empty outside the app)."""
    found = _found()
    if found is None:
        return []
    if not _view or _view[0][0] is not found:
        _view[:] = [(found, [_from(found, e) for e in found.extensions])]
    return _view[0][1]


def active() -> list[Extension]:
    """The enabled ones (``--disable-all-extensions`` and ``--disable-extra-extensions`` already
    disabled theirs when the set was found)."""
    return [e for e in extensions() if e.enabled]


def extension_paths() -> dict[str, Extension]:
    return {e.path: e for e in extensions()}


def find_extension(filename: str) -> Extension | None:
    """The extension whose folder holds ``filename``, or None."""
    folder = os.path.dirname(os.path.realpath(filename))
    for extension in extensions():
        root = os.path.realpath(extension.path)
        if folder == root or folder.startswith(root + os.sep):
            return extension
    return None


def extensions_dir() -> str:
    from modules import paths
    return paths.extensions_dir


def extensions_builtin_dir() -> str:
    from modules import paths
    return paths.extensions_builtin_dir
