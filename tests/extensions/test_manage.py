"""Installing, listing, checking and updating extensions from real git repositories on disk
(a local upstream stands in for a public repository), and the refusal on a network-reachable
server, through the Extensions tab's own handlers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modules.config import parse_config
from modules.extensions import manage
from modules.runtime import Runtime
from webui.app import create_app

INSTALL_PY = "from pathlib import Path\nPath('installed-by-install-py.txt').write_text('ran')\n"


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), "-c", "user.name=Test", "-c", "user.email=test@example.com",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit_file(repo: Path, name: str, text: str) -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture()
def upstream(tmp_path: Path) -> Path:
    repo = tmp_path / "upstream" / "sd-demo-extension.git"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    commit_file(repo, "install.py", INSTALL_PY)
    commit_file(repo, "scripts/demo.py", "LEVEL = 1\n")
    return repo


def test_install_clones_runs_install_py_and_lists_git_data(tmp_path, upstream) -> None:
    root = tmp_path / "extensions"
    lines: list[str] = []
    item = manage.install(root, str(upstream), report=lines.append)
    assert item.name == "sd-demo-extension" and item.path == root / "sd-demo-extension"
    assert (item.path / "installed-by-install-py.txt").read_text() == "ran"  # install.py ran there
    assert (item.remote, item.branch, item.commit_hash) == (str(upstream), "main", git(upstream, "rev-parse", "HEAD"))
    assert item.commit_date > 0 and item.enabled
    assert [e.name for e in manage.installed(root, ())] == ["sd-demo-extension"]  # no staging folder left
    assert not manage.installed(root, ("sd-demo-extension",))[0].enabled


def test_install_takes_a_branch_a_folder_name_and_a_plain_folder(tmp_path, upstream) -> None:
    git(upstream, "checkout", "-q", "-b", "dev")
    dev_head = commit_file(upstream, "scripts/dev.py", "DEV = True\n")
    git(upstream, "checkout", "-q", "main")
    root = tmp_path / "extensions"
    item = manage.install(root, str(upstream), name="dev-copy", branch="dev")
    assert (item.name, item.branch, item.commit_hash) == ("dev-copy", "dev", dev_head)
    plain = tmp_path / "plain-ext"
    (plain / "scripts").mkdir(parents=True)
    (plain / "scripts" / "p.py").write_text("P = 1\n")
    copied = manage.install(root, str(plain))
    assert (copied.path / "scripts" / "p.py").read_text() == "P = 1\n" and copied.remote == ""


def test_bad_installs_say_why_and_leave_nothing_behind(tmp_path, upstream) -> None:
    root = tmp_path / "extensions"
    manage.install(root, str(upstream))
    with pytest.raises(manage.ExtensionError, match="already installed"):
        manage.install(root, str(upstream))
    with pytest.raises(manage.ExtensionError, match="git clone failed"):
        manage.install(root, str(tmp_path / "no-such-repo.git"))
    with pytest.raises(manage.ExtensionError, match="letters, digits"):
        manage.install(root, str(upstream), name="../escape")
    with pytest.raises(manage.ExtensionError, match="URL or path"):
        manage.install(root, "  ")
    assert sorted(p.name for p in root.iterdir()) == ["sd-demo-extension"]


def test_check_for_updates_and_update_fast_forward(tmp_path, upstream) -> None:
    item = manage.install(tmp_path / "extensions", str(upstream))
    assert manage.check_for_updates(item).behind == 0
    new_head = commit_file(upstream, "scripts/demo.py", "LEVEL = 2\n")
    check = manage.check_for_updates(item)
    assert (check.behind, check.message) == (1, "1 new commit(s)")
    updated = manage.update(item)
    assert updated.commit_hash == new_head and (item.path / "scripts" / "demo.py").read_text() == "LEVEL = 2\n"
    assert manage.check_for_updates(updated).behind == 0


def test_update_never_discards_local_commits(tmp_path, upstream) -> None:
    item = manage.install(tmp_path / "extensions", str(upstream))
    local = commit_file(item.path, "scripts/mine.py", "MINE = 1\n")
    commit_file(upstream, "scripts/demo.py", "LEVEL = 3\n")
    with pytest.raises(manage.ExtensionError, match="merge failed"):
        manage.update(item)
    assert git(item.path, "rev-parse", "HEAD") == local


def tab_handler(client: TestClient, elem_id: str):
    config = client.get("/config").json()
    ids = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    dependency = next(d for d in config["dependencies"] if any(ids.get(t[0]) == elem_id for t in d["targets"]))
    return client.app.router.routes[-1].app.get_blocks().fns[dependency["id"]].fn


@pytest.mark.parametrize("flags, refused", [((), False), (("--listen",), True),
                                            (("--listen", "--enable-insecure-extension-access"), False)])
def test_the_tab_installs_on_loopback_and_refuses_when_reachable(tmp_path, upstream, flags, refused) -> None:
    data = tmp_path / "data"
    runtime = Runtime(parse_config(["--data-dir", str(data), *flags], data), cuda_available=False)
    try:
        install = tab_handler(TestClient(create_app(runtime)), "install_button")
        message, table, _ = install(str(upstream), "", "")
    finally:
        runtime.jobs.shutdown()
    installed = (data / "extensions" / "sd-demo-extension").is_dir()
    if refused:
        assert message.startswith("**Refused:**") and "--enable-insecure-extension-access" in message
        assert not installed
    else:
        assert message.startswith("Installed **sd-demo-extension**") and installed
        assert "| sd-demo-extension | " + str(upstream) + " | main |" in table
