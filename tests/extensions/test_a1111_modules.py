"""A1111's module names resolve and answer with A1111's behaviour."""

from __future__ import annotations

import importlib

import pytest
from PIL import Image

from modules import shared
from modules import images, processing, sd_samplers
from modules.infotext.parse import parse_infotext

NAMES = ("scripts", "shared", "processing", "script_callbacks", "images", "devices", "sd_samplers",
         "scripts_postprocessing", "paths", "rng", "infotext_utils", "generation_parameters_copypaste", "hashes",
         "sd_models", "sd_hijack", "ui_components", "ui")


@pytest.mark.parametrize("name", NAMES)
def test_module_imports_without_side_effects(name):
    module = importlib.import_module(f"modules.{name}")
    assert "compatibility surface" in (module.__doc__ or "")


def test_older_infotext_name_is_the_same_parser():
    from modules import generation_parameters_copypaste, infotext_utils
    assert generation_parameters_copypaste.parse_generation_parameters is infotext_utils.parse_generation_parameters
    fields = infotext_utils.parse_generation_parameters("a cat\nNegative prompt: dog\nSteps: 20, Seed: 5, Size: 64x64")
    assert fields["Prompt"] == "a cat" and fields["Negative prompt"] == "dog" and fields["Seed"] == "5"


def test_script_extra_params_reach_the_infotext_and_parse_back():
    p = processing.StableDiffusionProcessingTxt2Img(prompt="cat", negative_prompt="dog", seed=5, steps=12)
    p.setup_prompts()
    p.all_prompts[0] = "cat, changed by a script"
    p.extra_generation_params["Demo level"] = "a, b"  # a comma: quoted as A1111 quotes it
    fields = parse_infotext(processing.create_infotext(p))
    assert fields["Prompt"] == "cat, changed by a script" and fields["Steps"] == "12"
    assert fields["Demo level"] == "a, b"


def test_fix_seed_replaces_minus_one_only():
    p = processing.StableDiffusionProcessing(seed=-1, subseed=7)
    processing.fix_seed(p)
    assert p.seed >= 0 and p.subseed == 7


def test_process_images_outside_the_app_says_the_runtime_is_not_bound(monkeypatch):
    monkeypatch.setattr(shared, "_bound", [])
    with pytest.raises(RuntimeError, match="not bound"):
        processing.process_images(processing.StableDiffusionProcessingTxt2Img())


def test_samplers_listed_under_a1111_names_and_aliases():
    assert "DPM++ 2M" in sd_samplers.all_samplers_map
    assert sd_samplers.find_sampler_config("euler a").name == "Euler a"


def test_flatten_composes_transparency_over_the_colour():
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert images.flatten(clear, "#ff0000").getpixel((0, 0)) == (255, 0, 0)


def test_save_image_numbers_files_and_writes_parameters(tmp_path):
    first, _ = images.save_image(Image.new("RGB", (4, 4)), str(tmp_path), "x", seed=3, info="cat\nSteps: 1, Seed: 3, Size: 4x4")
    second, _ = images.save_image(Image.new("RGB", (4, 4)), str(tmp_path), "x", seed=3)
    assert first.endswith("00000-3-x.png") and second.endswith("00001-3-x.png")
    assert Image.open(first).info["parameters"].startswith("cat")
