"""Settings that persist across a restart, the checkpoint dropdown, and the login page."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from modules.infotext.files import read_infotext
from tests.browser.conftest import screenshot, start_server, write_tiny_model
from tests.browser.helpers import (
    TIMEOUT_MS, choose, choose_radio, open_page, open_tab, set_number, small_txt2img, wait_for_text, wait_until_ready,
)

pytestmark = pytest.mark.browser


def test_a_setting_takes_effect_and_persists_after_a_restart(browser, page, tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "models" / "Stable-diffusion", "tiny.safetensors", seed=5)
    server = start_server(tmp_path)
    try:
        open_page(page, server.url)
        open_tab(page, "Settings")
        choose_radio(page, "setting_samples_format", "jpg")
        set_number(page, "setting_jpeg_quality", 90)
        page.click("#settings_submit")
        message = wait_for_text(page, "#settings_result", "changed")
        assert "jpeg_quality" in message and "samples_format" in message
        assert json.loads((tmp_path / "config.json").read_text())["samples_format"] == "jpg"
        open_tab(page, "txt2img")
        small_txt2img(page, "a saved jpeg", steps=2)
        page.click("#txt2img_generate")
        infotext = wait_for_text(page, "#html_info_txt2img textarea", "Steps: 2")
        saved = list((tmp_path / "outputs" / "txt2img-images").rglob("*.*"))
        assert [p.suffix for p in saved] == [".jpg"] and read_infotext(saved[0]) == infotext
    finally:
        server.stop()
    restarted = start_server(tmp_path)
    try:
        again = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(again, restarted.url)
        open_tab(again, "Settings")
        assert again.locator("#setting_samples_format input[value='jpg']").is_checked()
        assert again.locator("#setting_jpeg_quality input[type=number]").input_value() == "90"
        screenshot(again, "settings-after-restart")
        again.close()
    finally:
        restarted.stop()


def test_switching_checkpoints_in_the_dropdown(server, page) -> None:
    open_page(page, server.url)
    choose(page, "setting_sd_model_checkpoint", "tiny-b.safetensors")
    wait_for_text(page, "#checkpoint_status", "Loaded tiny-b.safetensors")
    choose(page, "setting_sd_model_checkpoint", "zz-broken.safetensors")
    status = wait_for_text(page, "#checkpoint_status", "Checkpoint not changed")
    assert "zz-broken.safetensors" in status
    assert page.locator("#setting_sd_model_checkpoint input").first.input_value().startswith("tiny-b.safetensors [")
    small_txt2img(page, "after a switch", steps=2)
    page.click("#txt2img_generate")
    assert "Model: tiny-b" in wait_for_text(page, "#html_info_txt2img textarea", "Steps: 2")
    choose(page, "setting_sd_model_checkpoint", "tiny-a.safetensors")
    wait_for_text(page, "#checkpoint_status", "Loaded tiny-a.safetensors")


def test_gradio_auth_asks_for_a_login_and_the_theme_is_forced(browser, tmp_path: Path, data_dir: Path) -> None:
    shutil.copytree(data_dir / "models", tmp_path / "models")
    server = start_server(tmp_path, "--gradio-auth", "alice:s3cret", "--theme", "dark")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + "/internal/progress?id=job-1", timeout=10)
        assert refused.value.code == 401
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url)
        page.locator("input[type=password]").wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#txt2img_prompt").count() == 0
        screenshot(page, "login-page")
        wrong = urllib.parse.urlencode({"username": "alice", "password": "wrong"}).encode()
        with pytest.raises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(server.url + "/login", data=wrong, timeout=10)
        assert rejected.value.code == 400
        page.locator("input[type=text]").first.fill("alice")
        page.locator("input[type=password]").fill("s3cret")
        page.locator("button", has_text="Login").click()
        wait_until_ready(page)
        answer = page.evaluate("fetch('internal/progress?id=job-1').then(r => r.status)")
        assert answer == 200
        assert "dark" in page.evaluate("document.body.className")  # --theme dark
        page.close()
    finally:
        server.stop()
