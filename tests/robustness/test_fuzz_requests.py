"""Fuzzing the request models and the file-name pattern: whatever JSON a client sends in whatever
field, the API answers a validation result (422 naming fields, or acceptance), never a 500; whatever
pattern and prompt, an image's path stays inside its output folder.

Generation is not run: the job queue is stubbed to refuse with 503 (queue full), which a request
reaches only after every validation passed, so 503 here means "valid" and nothing is generated."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.config import parse_config
from modules.infotext.files import MAX_NAME_LENGTH, OUTPUT_KINDS, filename_tokens, output_path
from modules.jobs import QueueFullError
from modules.runtime import Runtime
from tests.api.conftest import write_tiny_model
from webui.api.schemas import ExtrasSingleRequest, Img2ImgRequest, Txt2ImgRequest
from webui.app import create_app

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Any JSON value, NaN and infinities included (JavaScript clients write them), nested a little.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("fuzz-requests")
    write_tiny_model(root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=4)
    runtime = Runtime(parse_config(["--data-dir", str(root), "--nowebui"], root), cuda_available=False)

    def refuse(work, max_waiting=None, description="job"):
        raise QueueFullError(0, 1)

    runtime.jobs.submit = refuse  # the stub described above: valid requests stop at the queue
    with TestClient(create_app(runtime), raise_server_exceptions=False) as running:
        yield running


def bodies(model: type) -> st.SearchStrategy[dict]:
    return st.dictionaries(st.sampled_from(sorted(model.model_fields)), JSON, max_size=5)


def post(client: TestClient, route: str, body) -> int:
    answer = client.post(f"/sdapi/v1/{route}", content=json.dumps(body, allow_nan=True),
                         headers={"Content-Type": "application/json"})
    if answer.status_code == 422:  # a refusal names each field and says why
        detail = answer.json()["detail"]
        assert detail and all(item["loc"] and item["msg"] for item in detail), answer.text
    return answer.status_code


@FUZZ
@given(body=bodies(Txt2ImgRequest))
def test_txt2img_answers_any_json_with_a_validation_result(client: TestClient, body: dict) -> None:
    assert post(client, "txt2img", body) in (200, 422, 503)


@FUZZ
@given(body=bodies(Img2ImgRequest))
def test_img2img_answers_any_json_with_a_validation_result(client: TestClient, body: dict) -> None:
    assert post(client, "img2img", body) in (200, 422, 503)


@FUZZ
@given(body=bodies(ExtrasSingleRequest))
def test_extras_answers_any_json_with_a_validation_result(client: TestClient, body: dict) -> None:
    assert post(client, "extra-single-image", body) in (200, 422)


OPTION_KEYS = ("sd_vae", "samples_format", "jpeg_quality", "eta_ddim", "CLIP_stop_at_last_layers", "samples_save",
               "txt2img_default_sampler", "samples_filename_pattern", "show_progress_type", "no_such_option")


@FUZZ
@given(body=st.dictionaries(st.sampled_from(OPTION_KEYS), JSON, max_size=3))
def test_options_answer_any_json_with_a_validation_result(client: TestClient, body: dict) -> None:
    assert post(client, "options", body) in (200, 422)


@FUZZ
@given(body=JSON)
def test_a_body_that_is_not_an_object_is_a_validation_result(client: TestClient, body) -> None:
    for route in ("txt2img", "img2img", "options", "png-info", "extra-single-image"):
        assert post(client, route, body) in (200, 422, 503)


# Pieces of a pattern: separators, dots, unsafe characters, known tokens and any character.
PATTERN = st.lists(st.sampled_from(["[prompt_words]", "[seed]", "[model_name]", "[sampler]", "[date]", "[prompt_hash]",
                                    "..", "/", "\\", ".", ":", "<", "*", "?", "|", "\x00", "\x1f", " ", "[", "]"])
                   | st.characters(), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(pattern=PATTERN, prompt=st.text(max_size=200), model=st.text(max_size=40), sampler=st.text(max_size=20),
       kind=st.sampled_from(OUTPUT_KINDS), seed=st.integers(0, 2**32 - 1))
def test_any_pattern_and_prompt_give_a_path_inside_the_output_folder(pattern: str, prompt: str, model: str,
                                                                     sampler: str, kind: str, seed: int) -> None:
    outputs = Path("/data/outputs")
    tokens = filename_tokens(seed=seed, steps=20, cfg=7.0, sampler=sampler, model_name=model, model_hash="0123456789",
                             prompt=prompt, width=64, height=64, batch_number=0, now=dt.datetime(2026, 12, 4))
    path = output_path(outputs, kind, tokens, pattern)
    assert path.parent == outputs / kind / "2026-12-04"  # one file, directly in the day's folder
    relative = path.relative_to(outputs)
    assert not relative.is_absolute() and ".." not in relative.parts
    assert "/" not in path.name and "\\" not in path.name and "\x00" not in path.name
    # "NNNNN-" + at most MAX_NAME_LENGTH characters of expanded pattern + ".png"
    assert len(path.name) <= len("00000-") + MAX_NAME_LENGTH + len(".png")
