"""The Extensions tab in the browser: install an extension from a git repository on this machine,
"Apply and restart UI", and the restarted page has the extension's own tab; the list shows its
remote, branch and commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import start_server, write_tiny_model
from tests.browser.helpers import TIMEOUT_MS, open_page, open_tab, wait_for_text

TAB_SCRIPT = """
import gradio as gr
from modules import script_callbacks


def tabs():
    with gr.Blocks(analytics_enabled=False) as demo:
        gr.Markdown("restarted with the extension", elem_id="restart_demo_text")
    return [(demo, "Restart demo", "restart_demo")]


script_callbacks.on_ui_tabs(tabs)
"""


def make_repository(folder: Path) -> str:
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "restart_demo.py").write_text(TAB_SCRIPT, encoding="utf-8")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "restart demo"]):
        subprocess.run(["git", "-C", str(folder), "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
                       check=True, capture_output=True)
    return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture()
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("webui-extensions-tab")
    write_tiny_model(root / "models" / "Stable-diffusion", "tiny-a.safetensors", seed=1)
    (root / "extensions").mkdir()
    running = start_server(root)
    yield running
    running.stop()


def test_install_from_a_local_repository_then_apply_and_restart_loads_it(server, page, tmp_path) -> None:
    repository = tmp_path / "restart-demo"
    head = make_repository(repository)
    open_page(page, server.url)
    open_tab(page, "Extensions")
    open_tab(page, "Install from URL")
    page.get_by_label("URL for extension's git repository, or a local path").fill(str(repository))
    page.get_by_role("button", name="Install", exact=True).click()
    wait_for_text(page, "#extension_install_result", "Installed restart-demo")
    open_tab(page, "Installed")
    table = wait_for_text(page, "#extensions_installed_html", "restart-demo")
    assert str(repository) in table and head[:8] in table and "main" in table
    assert page.get_by_label("restart-demo", exact=True).is_checked()  # a new extension starts enabled
    page.get_by_role("button", name="Apply and restart UI").click()
    # the server stops, starts again with the extension, and the page reloads by itself
    page.get_by_role("tab", name="Restart demo").wait_for(timeout=TIMEOUT_MS * 2)
    assert server.process.poll() is None and "Restarting..." in server.log.read_text()
    open_tab(page, "Restart demo")
    assert page.locator("#restart_demo_text").inner_text().strip() == "restarted with the extension"
