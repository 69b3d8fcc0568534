"""Extensions at server start: install.py, preload.py flags through the real parser into
``shared.cmd_opts``, scripts loaded, the disable flags and the persisted setting honoured, a
failing extension reported and the rest loaded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from modules import script_callbacks, scripts, shared
from modules.config import build_arg_parser
from modules.extensions import startup
from webui.tabs.extensions import installed_table


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def program(tmp_path):
    root = tmp_path / "program"
    data = tmp_path / "data"
    write(root / "extensions-builtin" / "core-ext" / "scripts" / "core_script.py",
          "from modules import scripts\nclass Core(scripts.Script):\n    def title(self):\n        return 'Core'\n")
    ext = data / "extensions"
    write(ext / "flagged" / "preload.py", "def preload(parser):\n    parser.add_argument('--flagged-level', type=int, default=1)\n")
    write(ext / "flagged" / "install.py", "from pathlib import Path\nPath('installed.txt').write_text('yes')\n")
    write(ext / "flagged" / "scripts" / "flagged_script.py",
          "from modules import scripts, shared\nLEVEL = shared.cmd_opts.flagged_level\n"
          "class Flagged(scripts.Script):\n    def title(self):\n        return 'Flagged'\n")
    write(ext / "broken" / "scripts" / "broken_script.py", "raise RuntimeError('broken on import')\n")
    write(ext / "switched-off" / "scripts" / "off_script.py", "raise AssertionError('must not load')\n")
    write(data / "config.json", json.dumps({"disabled_extensions": ["switched-off"]}))
    yield root, data
    script_callbacks.clear_callbacks()
    scripts.scripts_data.clear()
    for name in ("core_script", "flagged_script", "broken_script", "off_script"):
        sys.modules.pop(name, None)


def start(root: Path, data: Path, *flags: str) -> startup.ExtensionSet:
    lines: list[str] = []
    args, found = startup.prepare(["--data-dir", str(data), *flags], root, build_arg_parser(), report=lines.append)
    startup.load(found)
    return found


def by_name(found: startup.ExtensionSet) -> dict:
    return {e.name: e for e in found.extensions}


def test_flags_of_an_extension_parse_into_cmd_opts_and_its_scripts_load(program, capsys):
    root, data = program
    found = start(root, data, "--flagged-level", "7")
    assert shared.cmd_opts.flagged_level == 7 and shared.cmd_opts.data_dir == data
    assert (data / "extensions" / "flagged" / "installed.txt").read_text() == "yes"
    assert by_name(found)["flagged"].modules[0].LEVEL == 7
    assert sorted(d.script_class.__name__ for d in extension_scripts()) == ["Core", "Flagged"]
    states = {name: found.state_of(e) for name, e in by_name(found).items()}
    assert states == {"core-ext": "loaded", "flagged": "loaded", "broken": "failed", "switched-off": "disabled"}
    assert "broken on import" in capsys.readouterr().out  # reported on the console
    table = installed_table(data / "extensions", found, ("switched-off",))
    assert "| broken |  |  |  |  | yes | failed: RuntimeError: broken on import |" in table  # not a git clone
    assert "| flagged |  |  |  |  | yes | loaded |" in table
    assert "| switched-off |  |  |  |  | no | disabled |" in table


def extension_scripts() -> list:
    """The loaded script classes that come from extensions (not the program's scripts/ folder)."""
    return [d for d in scripts.scripts_data if d.basedir != str(startup.PROGRAM_ROOT)]


def test_skip_install_does_not_run_install_py(program):
    root, data = program
    start(root, data, "--skip-install")
    assert not (data / "extensions" / "flagged" / "installed.txt").exists()


def test_disable_extra_extensions_keeps_only_the_builtin_ones(program):
    root, data = program
    found = start(root, data, "--disable-extra-extensions")
    assert [e.name for e in found.enabled()] == ["core-ext"]
    assert [d.script_class.__name__ for d in extension_scripts()] == ["Core"]


def test_disable_all_extensions_loads_none_and_an_unknown_flag_is_refused(program):
    root, data = program
    found = start(root, data, "--disable-all-extensions")
    assert found.enabled() == [] and extension_scripts() == []
    # the program's own scripts/ (the built-in scripts) load first and always, as A1111's do
    assert [d.module.__name__ for d in scripts.scripts_data] == [
        "loopback.py", "outpainting_mk2.py", "poor_mans_outpainting.py", "prompt_matrix.py", "prompts_from_file.py",
        "sd_upscale.py", "xyz_grid.py"]
    with pytest.raises(SystemExit):  # without the extension's preload, its flag is unknown
        startup.prepare(["--data-dir", str(data), "--disable-all-extensions", "--flagged-level", "2"], root,
                        build_arg_parser(), report=lambda line: None)
