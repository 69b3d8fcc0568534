#!/usr/bin/env python3
"""The one entry point.

    python launch.py [flags]        set up ./venv on first run, then serve the web UI
    python launch.py test [args]    set up, install test requirements, run pytest (args go to pytest)
    python launch.py txt2img [...]  generate from the command line with the CompVis flags
    python launch.py img2img [...]  the same from an init image (--init-img, --strength)
    python launch.py train-demo     train the bundled demo model (CUDA when present, else CPU)
    python launch.py evaluate-demo  score the demo model's prompt adherence through the pipeline
    python launch.py bench [...]    the performance table (tests/benchmarks/bench_all.py; --help there)

Set-up is stdlib-only (``modules/bootstrap.py``) so it runs on a bare Python;
everything heavy is imported only after we are inside the virtual environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
COMMANDS = ("serve", "test", "txt2img", "img2img", "train-demo", "evaluate-demo", "bench")


# A1111 compatibility surface: extensions' install.py files call these (``launch.is_installed``,
# ``launch.run_pip``, ``launch.run``, ``launch.git``), so they live in this module under A1111's names.
git = os.environ.get("GIT", "git")
python = sys.executable


def is_installed(package: str) -> bool:
    """Whether a distribution (pip name) is installed in this environment."""
    from importlib import metadata

    try:
        metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def run(command: str, desc: str | None = None, errdesc: str | None = None, live: bool = True) -> str:
    """Runs a shell command, printing ``desc``; a failure raises with ``errdesc`` and its output."""
    if desc:
        print(desc)
    result = subprocess.run(command, shell=True, capture_output=not live, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{errdesc or 'Error running command'}.\nCommand: {command}\nError code: {result.returncode}")
    return result.stdout or ""


def run_pip(command: str, desc: str | None = None, live: bool = True) -> str:
    """``pip <command>`` in this environment, as A1111's ``launch.run_pip``."""
    return run(f'"{python}" -m pip {command} --prefer-binary', desc=f"Installing {desc}" if desc else None,
               errdesc=f"Couldn't install {desc}", live=live)


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:]
    return "serve", argv


def prepare_environment(argv: list[str], command: str) -> None:
    from modules import bootstrap

    if not bootstrap.in_virtualenv():
        bootstrap.reexec_in_venv(ROOT, argv)  # does not return
    bootstrap.install_requirements(ROOT / "requirements.txt")
    if command in ("test", "bench"):
        bootstrap.install_requirements(ROOT / "requirements-test.txt")
    if command == "test":
        bootstrap.ensure_chromium()


def run_tests(pytest_args: list[str]) -> int:
    command = [sys.executable, "-m", "pytest", *pytest_args]
    return subprocess.call(command, cwd=ROOT)


def main(argv: list[str]) -> int:
    command, rest = split_command(argv)
    if command in ("test", "bench"):
        if "--skip-install" not in rest:
            prepare_environment(argv, command)  # bench compares with diffusers, a test requirement
        if command == "bench":
            script = ROOT / "tests" / "benchmarks" / "bench_all.py"
            return subprocess.call([sys.executable, str(script), *(a for a in rest if a != "--skip-install")], cwd=ROOT)
        return run_tests(rest)
    if "--skip-install" not in rest:
        prepare_environment(argv, command)
    if command in ("txt2img", "img2img"):
        from modules.cli import run

        return run(command, [a for a in rest if a != "--skip-install"], ROOT)
    if command == "train-demo":
        from modules.demo.train import main as train_demo

        return train_demo([a for a in rest if a != "--skip-install"], ROOT)
    if command == "evaluate-demo":
        from modules.demo.evaluate import main as evaluate_demo

        return evaluate_demo([a for a in rest if a != "--skip-install"], ROOT)
    from modules.extensions.startup import parse_config_with_extensions

    # extensions' install.py and preload.py run first, so their flags parse; --help and bad flags
    # answer before the heavy imports
    config, extensions = parse_config_with_extensions(rest, ROOT)
    from webui.server import RESTART_EXIT_CODE, serve

    code = serve(config, extensions)
    if code == RESTART_EXIT_CODE:  # "Apply and restart UI": the same command again, in this process
        os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
