"""``--api-auth``: HTTP Basic on every API route."""

from __future__ import annotations

import pytest
import requests
import webuiapi

from tests.api.conftest import API, FAST, LiveServer, start_live_server, write_tiny_model

ROUTES = [("GET", "sd-models"), ("GET", "options"), ("GET", "progress"), ("GET", "samplers"), ("GET", "loras"),
          ("GET", "script-info"), ("POST", "txt2img"), ("POST", "interrupt"), ("POST", "refresh-checkpoints")]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("api-auth")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=4)
    running = start_live_server(root, "--nowebui", "--api-auth", "alice:s3cret,bob:hunter2", register_scripts=False)
    yield running
    running.stop()


@pytest.mark.parametrize("method, route", ROUTES)
def test_without_credentials_is_401_with_basic_challenge(guarded: LiveServer, method: str, route: str) -> None:
    response = requests.request(method, guarded.api(route), json={}, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Basic"


@pytest.mark.parametrize("auth", [("alice", "wrong"), ("mallory", "s3cret"), ("alice", "hunter2"), ("", "")])
def test_wrong_credentials_are_401(guarded: LiveServer, auth: tuple[str, str]) -> None:
    response = requests.get(guarded.api("sd-models"), auth=auth, timeout=30)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Basic"


@pytest.mark.parametrize("auth", [("alice", "s3cret"), ("bob", "hunter2")])
def test_each_listed_user_gets_in(guarded: LiveServer, auth: tuple[str, str]) -> None:
    response = requests.get(guarded.api("sd-models"), auth=auth, timeout=30)
    assert response.status_code == 200 and response.json()[0]["model_name"] == "tiny"


def test_generation_with_credentials_and_webuiapi_login(guarded: LiveServer) -> None:
    response = requests.post(guarded.api("txt2img"), json={**FAST, "prompt": "x", "seed": 1}, auth=("bob", "hunter2"),
                             timeout=120)
    assert response.status_code == 200 and len(response.json()["images"]) == 1
    client = webuiapi.WebUIApi(host="127.0.0.1", port=int(guarded.url.rsplit(":", 1)[1]), username="alice",
                               password="s3cret")
    assert client.util_get_model_names()[0].startswith("tiny.safetensors [")


def test_cmd_flags_do_not_echo_passwords(guarded: LiveServer) -> None:
    flags = requests.get(guarded.api("cmd-flags"), auth=("alice", "s3cret"), timeout=30).json()
    assert flags["api_auth"] == "alice:***,bob:***" and "s3cret" not in str(flags)


def test_the_docs_need_the_login_too(guarded: LiveServer) -> None:
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert requests.get(guarded.url + path, timeout=30).status_code == 401
    assert requests.get(guarded.url + "/docs", auth=("alice", "s3cret"), timeout=30).status_code == 200
    schema = requests.get(guarded.url + "/openapi.json", auth=("bob", "hunter2"), timeout=30).json()
    assert API + "/txt2img" in schema["paths"]
