"""One rule for numbers from outside, the same wording wherever they enter: request fields,
settings and generation parameters."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from modules.config import parse_config
from modules.numbers import number_problem
from modules.options import OptionsError, validate_option
from modules.params import ParamsError, Txt2ImgParams
from modules.runtime import Runtime
from webui.app import create_app


@pytest.mark.parametrize("value, bounds, reason", [
    (0.5, (0, 1), None), (0, (0, 1), None), (1, (0, 1), None), (7, None, None), (-1e300, None, None),
    (math.nan, (0, 1), "must be a finite number between 0 and 1, got nan"),
    (math.inf, None, "must be a finite number, got inf"),
    (-math.inf, (0, 999), "must be a finite number between 0 and 999, got -inf"),
    (1.5, (0, 1), "must be between 0 and 1, got 1.5"),
    (2**40, (0, 2**32 - 1), "must be between 0 and 4.29497e+09, got 1099511627776"),
    (True, (0, 1), "must be a number, got True"), ("1", None, "must be a number, got '1'"),
])
def test_number_problem(value, bounds, reason) -> None:
    assert number_problem(value, bounds) == reason


def test_settings_and_parameters_word_it_the_same() -> None:
    with pytest.raises(OptionsError) as caught:
        validate_option("eta_ddim", math.nan)
    assert caught.value.reason == "must be a finite number between 0 and 1, got nan"
    with pytest.raises(ParamsError) as refused:
        Txt2ImgParams(prompt="x", sampler_name="Euler a", sampler_knobs=(("eta", math.nan),)).validate()
    assert dict(refused.value.problems)["eta"] == "must be a finite number between 0 and 1, got nan"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("numbers")
    runtime = Runtime(parse_config(["--data-dir", str(root), "--nowebui"], root), cuda_available=False)
    return TestClient(create_app(runtime))


@pytest.mark.parametrize("route, field", [
    ("txt2img", "s_min_uncond"), ("txt2img", "refiner_switch_at"), ("img2img", "image_cfg_scale"),
    ("extra-single-image", "codeformer_weight"), ("extra-single-image", "upscaling_resize"),
])
@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_any_float_field_refuses_nan_and_infinity_by_name(client: TestClient, route: str, field: str, text: str) -> None:
    # Fields with no range of their own in the engine: the request models' shared check is what stops them.
    answer = client.post(f"/sdapi/v1/{route}", content=f'{{"{field}": {text}}}',
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    found = {tuple(item["loc"]): item["msg"] for item in answer.json()["detail"]}
    assert "must be a finite number" in found[("body", field)]
