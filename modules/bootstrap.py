"""First-run set-up: a virtual environment with the pinned requirements.

This module runs under whatever Python the user started ``launch.py`` with, so
it uses the standard library only. It is imported by ``launch.py`` before
anything heavy (torch, gradio) and has no import-time side effects.

Why a stamp plus a version check: ``pip install -r`` takes seconds even when
nothing is missing; reading installed versions with ``importlib.metadata``
takes milliseconds, so later starts skip pip entirely when every pin holds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

VENV_DIR_NAME = "venv"
# A requirement line we can check without pip: ``name==version`` (extras allowed).
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)\s*(#.*)?$")
# A pin to install without its dependencies, written as a comment so that ``pip install -r``
# skips it: ``# no-deps: name==version``. For a package whose declared dependencies are far
# heavier than the one file we use (k-diffusion's sampling.py, a test oracle).
_NO_DEPS = re.compile(r"^\s*#\s*no-deps:\s*(.+)$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str


def in_virtualenv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def venv_python(venv_dir: Path) -> Path:
    if os.name == "nt":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def read_pins(requirements: Path) -> list[Pin]:
    """The ``name==version`` lines of a requirements file; other lines are left to pip."""
    pins = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            pins.append(Pin(match.group(1), match.group(3)))
    return pins


def read_no_deps_pins(requirements: Path) -> list[Pin]:
    """The ``# no-deps: name==version`` lines of a requirements file."""
    pins = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        marked = _NO_DEPS.match(line)
        pin = _PIN.match(marked.group(1)) if marked else None
        if marked and not pin:
            raise ValueError(f"{requirements.name}: '{line.strip()}' must name an exact pin, e.g. '# no-deps: pkg==1.0'")
        if pin:
            pins.append(Pin(pin.group(1), pin.group(3)))
    return pins


def _normalise(name: str) -> str:
    # PEP 503 name normalisation.
    return re.sub(r"[-_.]+", "-", name).lower()


def _release(version: str) -> str:
    # "2.13.0+cpu" satisfies "==2.13.0" (PEP 440: a local label is ignored
    # when the specifier has none).
    return version.split("+", 1)[0]


def unsatisfied_pins(pins: list[Pin]) -> list[str]:
    """Pins whose installed version differs, as readable strings (empty: all hold)."""
    missing = []
    for pin in pins:
        try:
            installed = metadata.version(_normalise(pin.name))
        except metadata.PackageNotFoundError:
            missing.append(f"{pin.name} (not installed)")
            continue
        if _release(installed) != _release(pin.version):
            missing.append(f"{pin.name} ({installed} installed, {pin.version} pinned)")
    return missing


def requirements_satisfied(requirements: Path) -> bool:
    lines = [l.strip() for l in requirements.read_text(encoding="utf-8").splitlines()]
    wanted = [l for l in lines if l and not l.startswith(("#", "-"))]
    pins = read_pins(requirements)
    # Unpinned lines cannot be checked cheaply: let pip decide for them.
    return len(pins) == len(wanted) and not unsatisfied_pins(pins + read_no_deps_pins(requirements))


def install_commands(requirements: Path) -> list[list[str]]:
    """The pip commands that bring the interpreter in line with a requirements file: ``-r`` for the
    ordinary lines, then one ``--no-deps`` install of every ``# no-deps:`` pin that does not hold."""
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    commands = [[*pip, "-r", str(requirements)]]
    stale = [pin for pin in read_no_deps_pins(requirements) if unsatisfied_pins([pin])]
    if stale:
        commands.append([*pip, "--no-deps", *(f"{pin.name}=={pin.version}" for pin in stale)])
    return commands


def install_requirements(requirements: Path) -> None:
    """pip-install a requirements file into the running interpreter, unless already satisfied."""
    if requirements_satisfied(requirements):
        return
    print(f"Installing {requirements.name} (first run or changed pins)...", flush=True)
    for command in install_commands(requirements):
        subprocess.run(command, check=True)


def create_venv(venv_dir: Path) -> None:
    print(f"Creating the virtual environment {venv_dir} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True)


def reexec_in_venv(root: Path, argv: list[str]) -> None:
    """Replace this process with the same command run by ./venv's Python (creating it first)."""
    venv_dir = root / VENV_DIR_NAME
    python = venv_python(venv_dir)
    if not python.exists():
        create_venv(venv_dir)
    os.execv(str(python), [str(python), str(root / "launch.py"), *argv])


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> None:
    """Install Debian's chromium for the browser tests when we are root and it is missing."""
    if chromium_path() or not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    print("Installing chromium for the browser tests (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    packages = ["chromium", "fonts-liberation"]
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], check=True, env=env)
