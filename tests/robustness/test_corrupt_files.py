"""A config.json or styles.csv torn by a crash or edited by hand does not stop the start: the file is
renamed aside to ``<name>.corrupt-<YYYYmmdd-HHMMSS>`` (kept byte for byte), a console line says what
was moved and why, and the defaults are used until a fresh file is saved."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modules.config import parse_config
from modules.options import Options
from modules.runtime import Runtime
from modules.styles import Style, read_styles, save_style

SET_ASIDE_NAME = r"{}\.corrupt-\d{{8}}-\d{{6}}"


def start(data_dir: Path) -> Runtime:
    return Runtime(parse_config(["--data-dir", str(data_dir)], data_dir), cuda_available=False)


def only_set_aside(data_dir: Path, name: str) -> Path:
    moved = list(data_dir.glob(f"{name}.corrupt-*"))
    assert len(moved) == 1, moved
    assert re.fullmatch(SET_ASIDE_NAME.format(re.escape(name)), moved[0].name)
    return moved[0]


@pytest.mark.parametrize("torn, reason", [
    (b'{"jpeg_quality": 70, "samples_form', "not valid JSON"),  # a write cut off mid-file
    (b"\xff\xfe\x00{ binary junk", "not valid JSON"),  # not even UTF-8
    (b'["jpeg_quality", 70]', "JSON list"),  # JSON, but not an object of settings
    (b"42", "JSON int"),
], ids=["cut-off", "not-utf8", "json-list", "json-number"])
def test_a_corrupt_config_json_is_set_aside_and_the_defaults_used(tmp_path: Path, torn: bytes, reason: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_bytes(torn)
    with caplog.at_level("WARNING", logger="modules.options"):
        runtime = start(tmp_path)
    moved = only_set_aside(tmp_path, "config.json")
    assert moved.read_bytes() == torn and not config_file.exists()
    assert runtime.options.set_aside_to == moved
    assert runtime.options.current == Options()
    messages = [record.getMessage() for record in caplog.records]
    assert any(str(config_file) in m and str(moved) in m and reason in m for m in messages), messages

    runtime.update_options({"jpeg_quality": 70})
    assert json.loads(config_file.read_text(encoding="utf-8"))["jpeg_quality"] == 70
    assert start(tmp_path).options.current.jpeg_quality == 70  # the fresh file is read back on the next start
    assert moved.read_bytes() == torn  # saving did not touch the set-aside copy


def test_a_valid_config_json_is_read_and_left_in_place(tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"jpeg_quality": 55}), encoding="utf-8")
    runtime = start(tmp_path)
    assert runtime.options.current.jpeg_quality == 55 and runtime.options.set_aside_to is None
    assert list(tmp_path.glob("config.json.corrupt-*")) == []


@pytest.mark.parametrize("torn", [
    b"name,prompt,negative_prompt\nok,\xff\xfe broken,\n",  # undecodable bytes
    b"name,prompt,negative_prompt\n" + b"x" * 200_000 + b"\n",  # one field past csv's limit: csv.Error
    b"title,text\nx,y\n",  # a table, but not the styles table (no name column)
], ids=["not-utf8", "oversized-field", "no-name-column"])
def test_a_corrupt_styles_csv_is_set_aside_and_no_styles_are_used(tmp_path: Path, torn: bytes,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    styles_file = tmp_path / "styles.csv"
    styles_file.write_bytes(torn)
    with caplog.at_level("WARNING", logger="modules.styles"):
        runtime = start(tmp_path)
    moved = only_set_aside(tmp_path, "styles.csv")
    assert moved.read_bytes() == torn and not styles_file.exists()
    assert runtime.styles_set_aside == moved
    assert read_styles(runtime.config.styles_file) == {}
    messages = [record.getMessage() for record in caplog.records]
    assert any(str(styles_file) in m and str(moved) in m and "no styles" in m for m in messages), messages

    saved = save_style(styles_file, Style("ink", "{prompt}, ink", "blur"))
    assert saved == {"ink": Style("ink", "{prompt}, ink", "blur")}
    assert read_styles(styles_file) == saved
    assert start(tmp_path).styles_set_aside is None  # the fresh file is fine on the next start
    assert moved.read_bytes() == torn


def test_a_valid_styles_csv_is_left_in_place(tmp_path: Path) -> None:
    styles_file = tmp_path / "styles.csv"
    styles_file.write_text('name,prompt,negative_prompt\nink,"{prompt}, ink",blur\n', encoding="utf-8")
    runtime = start(tmp_path)
    assert runtime.styles_set_aside is None and list(read_styles(styles_file)) == ["ink"]
    assert list(tmp_path.glob("styles.csv.corrupt-*")) == []
