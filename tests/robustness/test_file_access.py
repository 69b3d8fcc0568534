"""No file of the server can be read through the page's backend: every event handler that takes a
file or image is sent a server path, and Gradio's file routes are asked for files outside what
the app serves; with no login, with ``--gradio-auth`` (logged in) and with ``--api-auth`` alone."""

from __future__ import annotations

import json
import secrets
import urllib.parse
from pathlib import Path

import gradio as gr
import pytest
import requests
from gradio import utils as gradio_utils
from starlette.routing import Mount

from tests.api.conftest import LiveServer, start_live_server, write_tiny_model

FILE_COMPONENTS = (gr.Image, gr.File, gr.ImageEditor, gr.Gallery, gr.Audio, gr.Video, gr.UploadButton, gr.Model3D)
AUTH_MODES = {"no login": (), "--gradio-auth": ("--gradio-auth", "alice:s3cret"),
              "--api-auth alone": ("--api", "--api-auth", "alice:s3cret")}


def mounted_blocks(server: LiveServer) -> gr.Blocks:
    app = server.server.config.app
    mount = next(route for route in app.routes if isinstance(route, Mount) and hasattr(route.app, "get_blocks"))
    return mount.app.get_blocks()


def file_value(component, path: str):
    """A client's value for ``component`` that names ``path`` wherever the component takes a file."""
    data = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": Path(path).name}
    if isinstance(component, gr.ImageEditor):
        return {"background": data, "layers": [data], "composite": data}
    if isinstance(component, gr.Gallery):
        return [{"image": data, "caption": None}]
    return data


def session(server: LiveServer, flags: tuple[str, ...]) -> requests.Session:
    client = requests.Session()
    if flags:
        answer = client.post(server.url + "/login", data={"username": "alice", "password": "s3cret"}, timeout=30)
        assert answer.status_code == 200, answer.text
    return client


def call_handler(client: requests.Session, server: LiveServer, fn_index: int, fn, data: list) -> str:
    """Everything the server answered to one event (the whole event stream for queued events)."""
    session_hash = secrets.token_hex(8)
    body = {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    if not fn.queue:
        return client.post(server.url + "/gradio_api/run/predict", json=body, timeout=60).text
    joined = client.post(server.url + "/gradio_api/queue/join", json=body, timeout=60)
    if joined.status_code != 200:
        return joined.text
    answered = []
    with client.get(server.url + "/gradio_api/queue/data", params={"session_hash": session_hash}, stream=True,
                    timeout=60) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            answered.append(line or "")
            if line and line.startswith("data:") and json.loads(line[5:]).get("msg") in ("process_completed",
                                                                                           "close_stream"):
                break
    return "\n".join(answered)


def files_containing(folder: Path, secret: str) -> list[Path]:
    found = []
    for path in folder.rglob("*") if folder.is_dir() else []:
        try:
            if path.is_file() and path.stat().st_size < 1_000_000 and secret in path.read_text(errors="ignore"):
                found.append(path)
        except OSError:
            continue
    return found


@pytest.fixture(scope="module", params=list(AUTH_MODES), ids=list(AUTH_MODES))
def server_and_flags(request, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("file-access")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=8)
    flags = AUTH_MODES[request.param]
    server = start_live_server(root, *flags, register_scripts=False)
    yield server, flags
    server.stop()


@pytest.fixture()
def secret_file(tmp_path: Path) -> tuple[Path, str]:
    secret = f"secret-{secrets.token_hex(16)}"
    path = tmp_path / "private" / "passwords.txt"
    path.parent.mkdir()
    path.write_text(secret + "\n", encoding="utf-8")
    return path, secret


def test_no_event_handler_copies_a_server_file(server_and_flags, secret_file) -> None:
    server, flags = server_and_flags
    path, secret = secret_file
    client = session(server, flags)
    blocks = mounted_blocks(server)
    tried = 0
    for fn_index, fn in blocks.fns.items():
        takes_files = [i for i, block in enumerate(fn.inputs) if isinstance(block, FILE_COMPONENTS)]
        if not takes_files:
            continue
        data = [file_value(block, str(path)) if i in takes_files else None for i, block in enumerate(fn.inputs)]
        answered = call_handler(client, server, fn_index, fn, data)
        tried += 1
        assert secret not in answered, (fn_index, fn.name)
        for mentioned in {part for part in answered.replace('"', " ").split() if part.startswith("/")}:
            fetched = client.get(server.url + "/gradio_api/file=" + mentioned.rstrip(".,"), timeout=30)
            assert secret not in fetched.text, (fn.name, mentioned)
    assert tried >= 5, "the page has image inputs on txt2img/img2img/PNG Info; the test must reach them"
    assert files_containing(Path(gradio_utils.get_upload_folder()), secret) == []


@pytest.mark.parametrize("target", ["{secret}", "/etc/passwd", "{data}/config.json", "{outputs}/../config.json",
                                    "{upload}/../../etc/passwd", "../../../../etc/passwd"])
def test_file_routes_refuse_paths_outside_what_the_app_serves(server_and_flags, secret_file, target: str) -> None:
    server, flags = server_and_flags
    path, secret = secret_file
    (server.data_dir / "config.json").write_text(json.dumps({"marker": secret}), encoding="utf-8")
    client = session(server, flags)
    asked = target.format(secret=path, data=server.data_dir, outputs=server.runtime.config.outputs_dir,
                          upload=gradio_utils.get_upload_folder())
    for route in ("/gradio_api/file=", "/file="):
        for spelled in (asked, urllib.parse.quote(asked, safe="")):
            answer = client.get(server.url + route + spelled, timeout=30)
            assert answer.status_code in (403, 404), (route, spelled, answer.status_code)
            assert secret not in answer.text and "root:x:0:0" not in answer.text


def test_generated_images_are_still_served(server_and_flags) -> None:
    """The fix keeps what the page needs: a file under the outputs folder is served (to a logged-in user)."""
    server, flags = server_and_flags
    image = server.runtime.config.outputs_dir / "txt2img-images" / "probe.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"\x89PNG\r\n\x1a\nprobe")
    answer = session(server, flags).get(server.url + "/gradio_api/file=" + str(image), timeout=30)
    assert answer.status_code == 200 and answer.content.endswith(b"probe")
    if flags:
        assert requests.get(server.url + "/gradio_api/file=" + str(image), timeout=30).status_code == 401
