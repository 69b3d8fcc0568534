"""Who may use the server: before login only the login form is served; a login (page cookie or
HTTP Basic) for the page or for the API opens every route, including ones Gradio adds."""

from __future__ import annotations

import secrets

import pytest
import requests
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from tests.api.conftest import FAST, LiveServer, start_live_server, write_tiny_model

USER = ("alice", "s3cret")


def get_routes(routes, prefix: str = "") -> list[str]:
    """GET paths under ``routes``, through mounts and included routers."""
    paths = []
    for route in routes:
        if isinstance(route, Route):
            paths += [prefix + route.path] if "GET" in (route.methods or ()) else []
        elif hasattr(route, "original_router"):  # FastAPI's record of an included router
            paths += get_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount) and hasattr(route.app, "routes"):
            paths += get_routes(route.app.routes, prefix + route.path.rstrip("/"))
    return paths


def all_get_paths(server: LiveServer) -> list[str]:
    """Every GET route the app has, the page's (Gradio's) and ours, with placeholders filled in."""
    paths = get_routes(server.server.config.app.routes)
    return sorted({p.replace("{", "").replace("}", "").replace(":path", "") for p in paths})


@pytest.fixture(scope="module", params=["--gradio-auth", "--api-auth"])
def guarded(request, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("access")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=9)
    server = start_live_server(root, "--api", request.param, ":".join(USER), register_scripts=False)
    yield server
    server.stop()


def test_before_login_only_the_login_form_is_served(guarded: LiveServer) -> None:
    page = requests.get(guarded.url + "/", timeout=30)
    assert page.status_code == 200 and 'type="password"' in page.text
    checkpoint = guarded.runtime.checkpoints()[0]
    for leaked in ("gradio_api_info", "gradio_config", "txt2img", "sd_model_checkpoint", checkpoint.shorthash,
                   "samples_format", "/sdapi"):
        assert leaked not in page.text, leaked


def test_every_other_route_asks_for_a_login(guarded: LiveServer) -> None:
    paths = all_get_paths(guarded)
    assert "/sdapi/v1/options" in paths and "/docs" in paths and any(p.startswith("/gradio_api/") for p in paths)
    for path in paths:
        if path in ("/", "/login", "/login/"):
            continue
        answer = requests.get(guarded.url + path, timeout=30)
        assert answer.status_code == 401, (path, answer.status_code)
    posted = requests.post(guarded.url + "/gradio_api/queue/join", json={"data": [], "fn_index": 0,
                                                                         "session_hash": "x"}, timeout=30)
    assert posted.status_code == 401


def test_a_wrong_login_is_refused_and_a_right_one_opens_page_backend_and_api(guarded: LiveServer) -> None:
    wrong = requests.post(guarded.url + "/login", data={"username": "alice", "password": "nope"}, timeout=30)
    assert wrong.status_code == 400
    assert requests.get(guarded.api("options"), auth=("alice", "nope"), timeout=30).status_code == 401
    browser = requests.Session()
    assert browser.post(guarded.url + "/login", data=dict(zip(("username", "password"), USER)),
                        timeout=30).status_code == 200
    assert 'type="password"' not in browser.get(guarded.url + "/", timeout=30).text  # the app itself now
    assert browser.get(guarded.url + "/config", timeout=30).status_code == 200
    assert browser.get(guarded.api("options"), timeout=30).status_code == 200  # the page's login opens the API
    made = requests.post(guarded.api("txt2img"), json={**FAST, "prompt": "x"}, auth=USER, timeout=120)
    assert made.status_code == 200 and len(made.json()["images"]) == 1


def test_a_route_added_later_is_guarded_too(guarded: LiveServer) -> None:
    """An extension's route (added on the app after start-up) is behind the same gate."""
    path = f"/ext-{secrets.token_hex(4)}/status"
    app = guarded.server.config.app
    app.router.routes.insert(0, APIRoute(path, lambda: {"ok": True}, methods=["GET"]))  # ahead of the page's "/" mount
    assert requests.get(guarded.url + path, timeout=30).status_code == 401
    assert requests.get(guarded.url + path, auth=USER, timeout=30).json() == {"ok": True}
