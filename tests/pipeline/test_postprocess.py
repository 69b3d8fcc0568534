"""The Extras engine: the postprocessing registry, the Upscale step's sizes and fields (as
A1111's postprocessing_upscale writes them), the three sources, and the text items kept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from modules.pipeline.extras import images_in_directory, run_extras, save_extras
from modules.pipeline.postprocess import (
    PostprocessContext, PostprocessError, PostprocessRegistry, postprocessing_text,
)
from modules.upscalers.library import UpscalerLibrary, Upscaling


def context(tmp_path) -> PostprocessContext:
    return PostprocessContext(Upscaling(UpscalerLibrary([("ESRGAN", [tmp_path / "none"])]), {}))


def gradient(width=32, height=32) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
    x[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    return Image.fromarray(x)


def run(tmp_path, image, **upscale):
    return PostprocessRegistry.with_builtins().run(image, {"Upscale": upscale}, context(tmp_path))


def test_scale_by_writes_a1111s_fields_and_rounds_the_size_down_to_a_multiple_of_8(tmp_path):
    pp = run(tmp_path, gradient(50, 30), upscale_by=2.0, upscaler_1_name="Lanczos")
    assert pp.image.size == (96, 56)  # 100x60 rounded down to multiples of 8, as A1111's Upscaler.upscale
    assert postprocessing_text(pp.info) == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"


def test_scale_to_with_crop_centres_the_cover_size_on_the_asked_canvas(tmp_path):
    source = gradient(32, 32)
    pp = run(tmp_path, source, upscale_mode=1, upscale_to_width=96, upscale_to_height=48, upscale_crop=True,
             upscaler_1_name="Nearest")
    assert pp.image.size == (96, 48)
    assert np.array_equal(np.asarray(pp.image), np.asarray(source.resize((96, 96), Image.Resampling.NEAREST))[24:72])
    assert postprocessing_text(pp.info) == ("Postprocess upscale to: 96x48, Postprocess crop to: 96x48, "
                                            "Postprocess upscaler: Nearest")


def test_max_side_length_limits_the_longer_side_and_is_recorded(tmp_path):
    pp = run(tmp_path, gradient(40, 20), upscale_by=4.0, max_side_length=80, upscaler_1_name="Lanczos")
    assert pp.image.size == (80, 40)
    assert "Max side length: 80" in postprocessing_text(pp.info)


def test_upscaler_2_is_blended_by_its_visibility(tmp_path):
    source = gradient(16, 16)
    pp = run(tmp_path, source, upscale_by=2.0, upscaler_1_name="Lanczos", upscaler_2_name="Nearest", upscaler_2_visibility=0.25)
    expected = Image.blend(source.resize((32, 32), Image.Resampling.LANCZOS), source.resize((32, 32), Image.Resampling.NEAREST), 0.25)
    assert np.array_equal(np.asarray(pp.image), np.asarray(expected))
    assert postprocessing_text(pp.info).endswith("Postprocess upscaler: Lanczos, Postprocess upscaler 2: Nearest")


def test_upscaler_none_leaves_image_and_text_alone(tmp_path):
    source = gradient()
    pp = run(tmp_path, source, upscale_by=2.0)
    assert pp.image.size == source.size and pp.info == {}


class Stamp:
    """A step as an extension would add it (A1111's ScriptPostprocessing shape)."""

    name, order = "Stamp", 1500

    def process(self, pp, args, context):
        pp.image = pp.image.point(lambda v: 255 - v)
        pp.info["Stamp"] = args.get("label", "Stamp")


def test_steps_run_in_order_and_an_added_step_appends_its_fields(tmp_path):
    registry = PostprocessRegistry.with_builtins()
    registry.register(Stamp())
    assert [s.name for s in registry.steps] == ["Upscale", "Stamp", "GFPGAN", "CodeFormer"]
    pp = registry.run(gradient(16, 16), {"Upscale": {"upscaler_1_name": "Nearest", "upscale_by": 2.0}, "Stamp": {}},
                      context(tmp_path))
    assert postprocessing_text(pp.info) == "Postprocess upscale by: 2, Postprocess upscaler: Nearest, Stamp"
    assert pp.image.getpixel((0, 0)) == tuple(255 - v for v in gradient(16, 16).getpixel((0, 0)))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Stamp())
    with pytest.raises(PostprocessError, match="no postprocessing step named Nope"):
        registry.run(gradient(), {"Nope": {}}, context(tmp_path))


@pytest.mark.parametrize("args, field, reason", [
    ({"Upscale": {"upscaler_1_name": "4x-Missing"}}, "upscaler_1_name", "valid: None, Lanczos, Nearest"),
    ({"Upscale": {"upscale_mode": 2}}, "upscale_mode", "must be 0 (scale by) or 1 (scale to)"),
    ({"Upscale": {"upscale_by": 9.0}}, "upscale_by", "between 0.05 and 8"),
    ({"Upscale": {"upscale_bye": 2}}, "upscale_bye", "not an Upscale argument"),
    ({"GFPGAN": {"gfpgan_visibility": 0.5}}, "gfpgan_visibility", "cannot be shipped"),
    ({"CodeFormer": {"codeformer_visibility": 1.0}}, "codeformer_visibility", "no face restorer is available (CodeFormer)"),
])
def test_unusable_arguments_are_refused_naming_the_argument(tmp_path, args, field, reason):
    with pytest.raises(PostprocessError) as caught:
        PostprocessRegistry.with_builtins().run(gradient(), args, context(tmp_path))
    assert caught.value.field == field and reason in caught.value.reason


def _png_with_parameters(path, image, text):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    image.save(path, pnginfo=info)


def test_a_directory_batch_keeps_each_sources_parameters_and_names_unreadable_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _png_with_parameters(folder / "a.png", gradient(16, 16), "a cat\nSteps: 20, Seed: 1")
    gradient(8, 8).save(folder / "b.jpg")
    (folder / "c.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("skipped: not an image suffix")
    sources = [(path, path.stem) for path in images_in_directory(folder)]
    result = run_extras(PostprocessRegistry.with_builtins(), sources,
                        {"Upscale": {"upscaler_1_name": "Lanczos", "upscale_by": 2.0}}, context(tmp_path))
    assert [(r.name, r.image.size) for r in result.results] == [("a", (32, 32)), ("b", (16, 16))]
    assert result.results[0].image.info["parameters"] == "a cat\nSteps: 20, Seed: 1"
    assert result.results[0].image.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    assert [name for name, _ in result.skipped] == ["c"] and "not a readable image" in result.skipped[0][1]
    saved = save_extras(result, tmp_path / "outputs", keep_names=True)
    assert [p.name for p in saved] == ["a.png", "b.png"] and saved[0].parent.parent.name == "extras-images"
    with Image.open(saved[0]) as reread:
        assert reread.info["parameters"] == "a cat\nSteps: 20, Seed: 1"
        assert reread.info["postprocessing"] == reread.info["extras"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"


def test_a_missing_input_directory_is_named(tmp_path):
    with pytest.raises(NotADirectoryError, match="does not exist"):
        images_in_directory(tmp_path / "nowhere")
