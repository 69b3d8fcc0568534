"""Which files ``GET /file=<path>`` serves to extensions' page scripts: only files inside an enabled
extension's folder or the program's ``tmp`` folder, never a hidden one."""

from __future__ import annotations

from pathlib import Path

from webui.extension_files import servable_file


def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    program, extension = tmp_path / "program", tmp_path / "data" / "extensions" / "tags-ext"
    (extension / "tags").mkdir(parents=True)
    (extension / "tags" / "danbooru.csv").write_text("1girl,0\n", encoding="utf-8")
    (extension / ".git").mkdir()
    (extension / ".git" / "config").write_text("url = https://token@example.invalid/x.git\n", encoding="utf-8")
    (program / "tmp").mkdir(parents=True)
    (program / "tmp" / "tagAutocompletePath.txt").write_text(str(extension / "tags"), encoding="utf-8")
    (program / "config.json").write_text("{}", encoding="utf-8")
    return program, extension, tmp_path / "data"


def test_files_of_an_extension_and_the_program_tmp_folder_are_served(tmp_path: Path) -> None:
    program, extension, _ = layout(tmp_path)
    roots = (extension.resolve(), (program / "tmp").resolve())
    csv = extension / "tags" / "danbooru.csv"
    assert servable_file(str(csv), program, roots) == csv.resolve()
    assert servable_file("tmp/tagAutocompletePath.txt", program, roots) == (program / "tmp" / "tagAutocompletePath.txt").resolve()


def test_everything_else_is_refused(tmp_path: Path) -> None:
    program, extension, _ = layout(tmp_path)
    roots = (extension.resolve(), (program / "tmp").resolve())
    (extension / "tags" / "escape.csv").symlink_to(program / "config.json")
    refused = [
        "config.json",  # the program folder itself
        str(program / "config.json"),
        str(extension / ".git" / "config"),  # hidden: remote URLs may carry tokens
        str(extension / "tags" / ".." / ".." / ".." / ".." / "program" / "config.json"),
        str(extension / "tags" / "escape.csv"),  # a link out of the folder
        str(extension / "tags"),  # a folder
        str(extension / "tags" / "missing.csv"),
        "tmp/../config.json",
        "https://example.invalid/x.csv",
    ]
    assert [r for r in refused if servable_file(r, program, roots) is not None] == []
