"""Installing, inspecting and updating extensions in ``extensions/`` (the Extensions tab and
``/sdapi/v1/extensions``), with git as A1111 v1.10.1 does (``modules/extensions.py``,
``modules/ui_extensions.py``): an extension is a git clone; its remote, branch and commit are read
from git; "check for updates" fetches and compares with the upstream branch; "update" moves to it.

Installing runs code from elsewhere on this machine, so it is the operator's act: it is refused
while the server is reachable from the network unless ``--enable-insecure-extension-access``
(A1111's rule), and the caller checks ``may_install`` first.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from modules.config import AppConfig
from modules.extensions import loader

GIT_TIMEOUT_S = 120
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ExtensionError(ValueError):
    """An install, check or update that cannot be done; the message says why."""


@dataclass(frozen=True)
class InstalledExtension:
    """One folder of ``extensions/`` as the tab lists it (A1111's fields; empty when not a git clone)."""

    name: str
    path: Path
    remote: str
    branch: str
    commit_hash: str
    commit_date: int  # seconds since the epoch, 0 when unknown
    enabled: bool

    @property
    def version(self) -> str:
        return self.commit_hash[:8]


def git(folder: Path, *args: str) -> str:
    """``git -C folder args``; its output, or ExtensionError with git's message."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ExtensionError(f"git {args[0]} failed: {error}") from error
    if done.returncode != 0:
        raise ExtensionError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()[-400:]}")
    return done.stdout.strip()


def _git_or_empty(folder: Path, *args: str) -> str:
    try:
        return git(folder, *args)
    except ExtensionError:
        return ""


def describe(path: Path, disabled: tuple[str, ...] | list[str]) -> InstalledExtension:
    is_clone = (path / ".git").exists()
    read = (lambda *args: _git_or_empty(path, *args)) if is_clone else (lambda *args: "")
    commit_hash, _, date = read("log", "-1", "--format=%H%n%ct").partition("\n")
    return InstalledExtension(
        name=path.name, path=path, remote=read("config", "--get", "remote.origin.url"),
        branch=read("rev-parse", "--abbrev-ref", "HEAD"), commit_hash=commit_hash,
        commit_date=int(date) if date.isdigit() else 0, enabled=path.name not in set(disabled))


def installed(root: Path, disabled: tuple[str, ...] | list[str]) -> list[InstalledExtension]:
    """Every extension folder (hidden and ``_``-prefixed ones are not extensions), by name."""
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    return [describe(p, disabled) for p in folders]


def may_install(config: AppConfig) -> str | None:
    """None when installing and updating are allowed; else the reason they are refused."""
    if config.reachable_from_network and not config.server.enable_insecure_extension_access:
        return ("Installing and updating extensions is disabled because the server is reachable from the "
                "network (--listen, --share or --server-name); start it with "
                "--enable-insecure-extension-access to allow it.")
    return None


def name_for(source: str, name: str = "") -> str:
    """The folder name: the one given, else the last part of the URL or path without ``.git``."""
    chosen = name.strip() or Path(urlparse(source.strip()).path.rstrip("/")).name.removesuffix(".git")
    if not NAME.match(chosen):
        raise ExtensionError(f"extension name {chosen!r}: use letters, digits, '.', '_' and '-' only")
    return chosen


def install(root: Path, source: str, name: str = "", branch: str = "",
            report: Callable[[str], None] = print) -> InstalledExtension:
    """Clones ``source`` (a git URL, or a local git repository or folder) into ``root/<name>``, then
    runs its ``install.py``. The clone is made beside the target and renamed into place, so a
    failed install leaves nothing half-written; an existing folder is never replaced."""
    if not source.strip():
        raise ExtensionError("URL or path: give the extension's git URL or a local path")
    folder_name = name_for(source, name)
    target = root / folder_name
    if target.exists():
        raise ExtensionError(f"an extension named {folder_name!r} is already installed ({target})")
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".installing-{folder_name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _fetch_into(staging, source.strip(), branch.strip())
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    extension = loader.Extension(folder_name, target)
    loader.run_install(extension, report=report)
    return describe(target, ())


def _fetch_into(staging: Path, source: str, branch: str) -> None:
    local = Path(source).expanduser()
    if local.is_dir() and not (local / ".git").exists():
        if branch:
            raise ExtensionError(f"branch {branch!r}: {source} is a plain folder, not a git repository")
        shutil.copytree(local, staging)
        return
    args = ["clone", "--quiet", *(["--branch", branch] if branch else []), source, str(staging)]
    git(staging.parent, *args)


@dataclass(frozen=True)
class UpdateCheck:
    name: str
    behind: int  # commits upstream has that the extension does not
    message: str


def check_for_updates(extension: InstalledExtension) -> UpdateCheck:
    """Fetches the remote and counts the upstream commits not in the extension."""
    if not extension.remote:
        return UpdateCheck(extension.name, 0, "not a git clone: cannot be updated")
    git(extension.path, "fetch", "--quiet")
    upstream = _upstream(extension)
    behind = int(git(extension.path, "rev-list", "--count", f"HEAD..{upstream}"))
    return UpdateCheck(extension.name, behind, f"{behind} new commit(s)" if behind else "up to date")


def update(extension: InstalledExtension) -> InstalledExtension:
    """Moves the extension to its upstream branch (fast-forward only: local edits are never lost;
    a diverged clone is reported instead)."""
    if not extension.remote:
        raise ExtensionError(f"{extension.name}: not a git clone, cannot be updated")
    git(extension.path, "fetch", "--quiet")
    git(extension.path, "merge", "--ff-only", "--quiet", _upstream(extension))
    return describe(extension.path, () if extension.enabled else (extension.name,))


def _upstream(extension: InstalledExtension) -> str:
    tracked = _git_or_empty(extension.path, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}")
    return tracked or f"origin/{extension.branch}"


def commit_date_text(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if seconds else ""
