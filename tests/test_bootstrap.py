"""The first-run set-up: pins, the venv re-exec, and command splitting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import launch
from modules import bootstrap

ROOT = Path(__file__).resolve().parents[1]


def test_read_pins_takes_exact_pins_only(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("# comment\ntorch==2.13.0\nuvicorn[standard] == 0.54.0  # why\nrequests>=2\n-e .\n")
    assert bootstrap.read_pins(req) == [bootstrap.Pin("torch", "2.13.0"), bootstrap.Pin("uvicorn", "0.54.0")]


def test_unsatisfied_pins_reports_missing_and_wrong_versions() -> None:
    import pytest as installed_pytest

    good = bootstrap.Pin("pytest", installed_pytest.__version__)
    wrong = bootstrap.Pin("pytest", "0.0.1")
    absent = bootstrap.Pin("surely-not-an-installed-package", "1.0")
    problems = bootstrap.unsatisfied_pins([good, wrong, absent])
    assert len(problems) == 2
    assert "0.0.1 pinned" in problems[0] and "not installed" in problems[1]


def test_local_version_label_satisfies_plain_pin() -> None:
    # torch's CPU wheel is "2.13.0+cpu": it satisfies "torch==2.13.0" (PEP 440).
    import torch

    assert bootstrap.unsatisfied_pins([bootstrap.Pin("torch", torch.__version__.split("+")[0])]) == []


def test_requirements_with_unpinned_lines_are_left_to_pip(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("pytest>=1\n")
    assert not bootstrap.requirements_satisfied(req)
    req.write_text(f"pytest=={pytest.__version__}\n")
    assert bootstrap.requirements_satisfied(req)


def test_no_deps_pins_are_read_checked_and_installed_without_dependencies(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text(f"pytest=={pytest.__version__}\n# no-deps: surely-not-an-installed-package==1.0\n# a comment\n")
    assert bootstrap.read_pins(req) == [bootstrap.Pin("pytest", pytest.__version__)]
    assert bootstrap.read_no_deps_pins(req) == [bootstrap.Pin("surely-not-an-installed-package", "1.0")]
    assert not bootstrap.requirements_satisfied(req)  # the no-deps pin is missing
    commands = bootstrap.install_commands(req)
    assert commands[0][-2:] == ["-r", str(req)]
    assert commands[1][-2:] == ["--no-deps", "surely-not-an-installed-package==1.0"]
    req.write_text(f"# no-deps: pytest=={pytest.__version__}\n")
    assert bootstrap.requirements_satisfied(req)
    assert len(bootstrap.install_commands(req)) == 1  # a pin that holds is not reinstalled


def test_no_deps_line_without_exact_pin_is_refused(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("# no-deps: k-diffusion>=0.1\n")
    with pytest.raises(ValueError, match="exact pin"):
        bootstrap.read_no_deps_pins(req)


def test_test_requirements_hold_the_sampler_oracle_without_its_dependencies() -> None:
    pins = bootstrap.read_no_deps_pins(ROOT / "requirements-test.txt")
    assert bootstrap.Pin("k-diffusion", "0.1.1.post1") in pins


def test_split_command() -> None:
    assert launch.split_command(["test", "-k", "x"]) == ("test", ["-k", "x"])
    assert launch.split_command(["--port", "1"]) == ("serve", ["--port", "1"])
    assert launch.split_command([]) == ("serve", [])


def _system_python() -> str:
    """A Python outside any virtual environment, as a user on a fresh machine has."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base)


def test_first_run_creates_venv_and_reexecutes_inside_it(tmp_path: Path) -> None:
    """launch.py under a bare Python makes ./venv, installs the requirements there, and re-runs itself in it."""
    shutil.copy(ROOT / "launch.py", tmp_path / "launch.py")
    shutil.copytree(ROOT / "modules", tmp_path / "modules", ignore=shutil.ignore_patterns("__pycache__", "data"))
    # No pins to install keeps the test offline-fast; the re-exec path is the same.
    (tmp_path / "requirements.txt").write_text("# nothing\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    run = lambda: subprocess.run(  # noqa: E731
        [_system_python(), "launch.py", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    first = run()
    assert first.returncode == 0, first.stderr
    assert "Creating the virtual environment" in first.stdout
    assert "--ckpt-dir" in first.stdout  # the help came from inside the venv, after the re-exec
    assert bootstrap.venv_python(tmp_path / "venv").exists()
    second = run()
    assert second.returncode == 0, second.stderr
    assert "Creating the virtual environment" not in second.stdout
