"""Names of A1111's modules that real extensions use, answering as A1111 v1.10.1's do."""

from __future__ import annotations

import datetime as dt
import sys
from types import ModuleType, SimpleNamespace

import pytest
import torch
from PIL import Image

from modules import images, processing, scripts, shared
from modules.infotext.files import save_image as save_generated_image
from tests.api.conftest import write_tiny_model
from tests.extensions.test_a1111_runtime_modules import bound  # noqa: F401 - a fixture

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def columns_image(colours: list[tuple[int, int, int]], height: int = 2) -> Image.Image:
    image = Image.new("RGB", (len(colours), height))
    for x, colour in enumerate(colours):
        for y in range(height):
            image.putpixel((x, y), colour)
    return image


def rows_image(colours: list[tuple[int, int, int]], width: int = 4) -> Image.Image:
    return columns_image(colours, width).transpose(Image.Transpose.TRANSPOSE)


# --- modules.images ---------------------------------------------------------------------------------

def test_resize_mode_0_stretches_to_the_size():
    assert images.resize_image(0, columns_image([RED, BLUE]), 6, 3).size == (6, 3)


def test_resize_mode_1_covers_and_crops_around_the_centre():
    # 4x2 into 2x2: A1111 resizes to 4x2 (unchanged) and pastes it at x=-1, keeping columns 1 and 2.
    out = images.resize_image(1, columns_image([RED, GREEN, BLUE, WHITE]), 2, 2)
    assert out.size == (2, 2) and [out.getpixel((x, 0)) for x in range(2)] == [GREEN, BLUE]


def test_resize_mode_2_fits_and_fills_the_bars_with_the_edge_rows():
    # 4x2 (red row over blue row) into 4x4: the image sits in rows 1-2, row 0 repeats its top edge, row 3 its bottom.
    out = images.resize_image(2, rows_image([RED, BLUE]), 4, 4)
    assert [out.getpixel((0, y)) for y in range(4)] == [RED, RED, BLUE, BLUE]


def test_resize_mode_3_is_filled_as_a1111s_resize_image_does():
    source = rows_image([RED, BLUE])
    assert images.resize_image(3, source, 4, 4).tobytes() == images.resize_image(2, source, 4, 4).tobytes()


def test_resize_with_a_named_upscaler_outside_the_app_says_the_runtime_is_missing(monkeypatch):
    monkeypatch.setattr(shared, "_bound", [])
    with pytest.raises(RuntimeError, match="runtime"):
        images.resize_image(0, columns_image([RED, BLUE]), 8, 8, upscaler_name="R-ESRGAN 4x+")


def test_read_info_from_image_reads_what_generation_wrote(tmp_path):
    infotext = "a cat\nNegative prompt: dog\nSteps: 12, Sampler: Euler a, Seed: 5, Size: 8x8"
    png, jpg = tmp_path / "a.png", tmp_path / "a.jpg"
    image = Image.new("RGB", (8, 8))
    image.info["extra"] = "kept"
    save_generated_image(image, png, infotext)
    save_generated_image(image, jpg, infotext)
    geninfo, items = images.read_info_from_image(Image.open(png))
    assert geninfo == infotext and items.get("extra") == "kept" and "parameters" not in items
    geninfo, items = images.read_info_from_image(Image.open(jpg))
    assert geninfo == infotext and items["exif comment"] == infotext and "exif" not in items


def test_image_data_reads_infotext_from_bytes_or_text(tmp_path):
    save_generated_image(Image.new("RGB", (4, 4)), tmp_path / "a.png", "cat\nSteps: 3")
    assert images.image_data((tmp_path / "a.png").read_bytes()) == ("cat\nSteps: 3", None)
    assert images.image_data(b"just text") == ("just text", None)


def test_sanitize_filename_part_as_a1111():
    assert images.sanitize_filename_part("  a/b: c. ") == "__a_b__c._"
    assert images.sanitize_filename_part("  a/b: c. ", replace_spaces=False) == "a_b_ c"
    assert images.sanitize_filename_part(None) is None
    assert len(images.sanitize_filename_part("x" * 300)) == 128


def test_filename_generator_expands_a_pattern():
    p = processing.StableDiffusionProcessingTxt2Img(steps=12, cfg_scale=7.5, sampler_name="Euler a")
    namegen = images.FilenameGenerator(p, 42, "a cat, on a mat", Image.new("RGB", (64, 32)))
    pattern = "[seed]-[steps]-[cfg]-[width]x[height]-[prompt_words]-[sampler]-[unknown]"
    assert namegen.apply(pattern) == "42-12-7.5-64x32-a cat on a mat-Euler a-[unknown]"
    assert namegen.apply("[prompt]") == "a_cat,_on_a_mat"
    assert namegen.apply("[datetime<%Y>]") == str(dt.datetime.now().year)
    assert namegen.apply("[seed]-[batch_number]") == "42"  # one image per batch: the token and the "-" before it go


def test_next_sequence_number_counts_past_the_highest(tmp_path):
    for name in ("00003-1.png", "00007-x.png", "notes.txt"):
        (tmp_path / name).write_text("")
    assert images.get_next_sequence_number(str(tmp_path), "") == 8


def test_grid_annotations_add_a_label_band():
    grid = Image.new("RGB", (64, 32), "red")
    columns = [[images.GridAnnotation("left")], [images.GridAnnotation("right", is_active=False)]]
    out = images.draw_grid_annotations(grid, 32, 32, columns, [[images.GridAnnotation("")]])
    assert out.width == 64 and out.height > 32
    assert out.getpixel((0, out.height - 1)) == RED and out.getpixel((0, 0)) == WHITE
    assert images.get_font(14).size == 14


def test_save_image_with_geninfo_round_trips(tmp_path):
    target = tmp_path / "b.png"
    images.save_image_with_geninfo(Image.new("RGB", (4, 4)), "dog\nSteps: 2", str(target))
    assert images.read_info_from_image(Image.open(target))[0] == "dog\nSteps: 2"


# --- modules.processing -----------------------------------------------------------------------------

def test_latent_constants():
    assert (processing.opt_C, processing.opt_f) == (4, 8)


def test_create_random_tensors_is_the_seeds_cpu_noise():
    noise = processing.create_random_tensors((4, 8, 8), seeds=[5, 6])
    assert noise.shape == (2, 4, 8, 8)
    for row, seed in zip(noise.cpu(), (5, 6)):
        assert torch.equal(row, torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(seed)))


def test_create_random_tensors_with_a_variation_seed_moves_towards_it():
    base = processing.create_random_tensors((4, 8, 8), [5])
    varied = processing.create_random_tensors((4, 8, 8), [5], subseeds=[9], subseed_strength=0.5)
    full = processing.create_random_tensors((4, 8, 8), [5], subseeds=[9], subseed_strength=1.0)
    assert not torch.equal(base, varied)
    assert torch.allclose(full.cpu(), torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(9))[None], atol=1e-5)


def tiny_loaded_vae():
    from modules.models.vae_tiling import VAETiling
    from tests.models.test_vae_decode import tiny_vae
    from tests.nets.checkpoints import TINY_SD1_VAE

    vae = tiny_vae(torch.float32)
    return vae, SimpleNamespace(vae=vae, detected=SimpleNamespace(vae=TINY_SD1_VAE), vae_tiling=VAETiling(),
                                policy=SimpleNamespace(vae_retry_in_fp32=False, device=torch.device("cpu"), is_cuda=False),
                                vae_decode_call=lambda: vae.decode, vae_encode_call=lambda: vae.encode)


def test_decode_first_stage_unscales_and_decodes():
    vae, model = tiny_loaded_vae()
    latents = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = vae.decode(latents / TINY_SD1_VAE_SCALE())
    assert torch.allclose(processing.decode_first_stage(model, latents), expected, atol=1e-5)


def test_images_tensor_to_samples_encodes_and_scales():
    vae, model = tiny_loaded_vae()
    pixels = torch.rand((1, 3, 16, 16), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = vae.encode(pixels * 2 - 1) * TINY_SD1_VAE_SCALE()
    assert torch.allclose(processing.images_tensor_to_samples(pixels, model=model), expected, atol=1e-5)


def TINY_SD1_VAE_SCALE() -> float:  # noqa: N802 - reads as the constant it is
    from tests.nets.checkpoints import TINY_SD1_VAE
    return TINY_SD1_VAE.scale_factor


def test_decode_outside_the_app_says_the_runtime_is_not_bound(monkeypatch):
    monkeypatch.setattr(shared, "_bound", [])
    with pytest.raises(RuntimeError, match="not bound"):
        processing.decode_first_stage(None, torch.zeros((1, 4, 2, 2)))


def test_apply_overlay_composites_the_overlay_into_the_crop():
    overlay = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    overlay.putpixel((0, 0), (255, 255, 255, 255))
    out = processing.apply_overlay(Image.new("RGB", (2, 2), RED), (2, 2, 2, 2), 0, [overlay])
    assert out.size == (4, 4) and out.getpixel((0, 0)) == WHITE and out.getpixel((3, 3)) == RED
    assert out.getpixel((1, 1)) == (0, 0, 0)  # outside the crop and the overlay: empty
    assert processing.apply_overlay(Image.new("RGB", (2, 2), RED), None, 1, [overlay]).getpixel((0, 0)) == RED


def test_color_correction_moves_colours_towards_the_target_and_keeps_luminosity():
    target = Image.new("RGB", (8, 8), (40, 80, 200))
    drifted = Image.new("RGB", (8, 8), (200, 80, 40))
    out = processing.apply_color_correction(processing.setup_color_correction(target), drifted)
    r, g, b = out.getpixel((0, 0))
    assert b > r  # now blue-ish as the target
    luminosity = lambda c: 0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2]  # noqa: E731 - W3C Lum()
    assert abs(luminosity((r, g, b)) - luminosity((200, 80, 40))) < 2


# --- modules.devices --------------------------------------------------------------------------------

def test_autocast_contexts_run_float32_work_unchanged():
    from modules import devices

    with devices.autocast(), devices.without_autocast():
        assert (torch.ones(2) * 2).dtype == torch.float32
    assert devices.has_mps() in (True, False) and devices.has_mps() == (sys.platform == "darwin" and torch.backends.mps.is_available())


def test_test_for_nans_raises_on_nan_output():
    from modules import devices

    devices.test_for_nans(torch.zeros((1, 4, 2, 2)), "unet")
    with pytest.raises(devices.NansException, match="unet"):
        devices.test_for_nans(torch.full((1, 4, 2, 2), float("nan")), "unet")


# --- modules.shared -------------------------------------------------------------------------------

def test_shared_names_extensions_read():
    from modules import devices

    assert shared.device == devices.device and shared.hypernetworks == {} and shared.loaded_hypernetworks == []
    assert sorted(["img10", "img2", "Img1"], key=shared.natural_sort_key) == ["Img1", "img2", "img10"]


def test_walk_files_in_natural_order_filtered_by_suffix(tmp_path):
    for name in ("b/img10.PNG", "b/img2.png", "a/note.txt", "a/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = [path.replace(str(tmp_path), "") for path in shared.walk_files(str(tmp_path), allowed_extensions=[".png"])]
    assert found == ["/a/x.png", "/b/img2.png", "/b/img10.PNG"]
    assert list(shared.walk_files(str(tmp_path / "missing"))) == []


def test_checkpoint_tiles_follow_a_refresh(bound):
    assert shared.list_checkpoint_tiles() == [bound.checkpoints()[0].title]
    write_tiny_model(bound.config.data_dir / "models" / "Stable-diffusion" / "second.safetensors", seed=2)
    shared.refresh_checkpoints()
    assert len(shared.list_checkpoint_tiles()) == 2 and any("second" in t for t in shared.list_checkpoint_tiles())


# --- modules.scripts ------------------------------------------------------------------------------

class AlwaysOnDemo(scripts.Script):
    def title(self):
        return "Demo always"

    def show(self, is_img2img):
        return scripts.AlwaysVisible


class TxtOnlyDemo(scripts.Script):
    def title(self):
        return "Demo pick"

    def show(self, is_img2img):
        return not is_img2img


def test_script_runners_list_each_tabs_registered_scripts(bound, tmp_path):
    from modules.extensions.a1111_bridge import register_scripts
    from modules.extensions.startup import ExtensionSet

    bound.load_extensions(ExtensionSet())  # the program's built-in scripts
    module = ModuleType("demo_scripts")
    register_scripts(bound, [scripts.ScriptClassData(cls, str(tmp_path / "demo.py"), str(tmp_path), module)
                             for cls in (AlwaysOnDemo, TxtOnlyDemo)])
    txt, img = scripts.scripts_txt2img, scripts.scripts_img2img
    assert [type(s) for s in txt.alwayson_scripts] == [AlwaysOnDemo] and txt.alwayson_scripts[0].alwayson
    assert "Demo pick" in txt.titles and "Demo pick" not in img.titles
    assert "X/Y/Z plot" in txt.titles and "X/Y/Z plot" in img.titles  # the built-in scripts are listed too
    assert isinstance(txt.script("demo PICK"), TxtOnlyDemo) and txt.script("demo pick").is_txt2img
    assert img.script("Demo always").is_img2img and img.script("demo pick") is None
    assert len(txt.scripts) == len(txt.selectable_scripts) + 1
    assert scripts.OnComponent(component="c").component == "c"


def test_script_runner_outside_the_app_lists_nothing(monkeypatch):
    monkeypatch.setattr(shared, "_bound", [])
    assert scripts.scripts_txt2img.scripts == [] and scripts.scripts_txt2img.titles == []


# --- modules.sd_samplers --------------------------------------------------------------------------

def test_create_sampler_says_why_it_is_not_available():
    from modules import sd_samplers

    with pytest.raises(NotImplementedError, match="p.sampler_name"):
        sd_samplers.create_sampler("Euler a", None)
    with pytest.raises(ValueError, match="bad sampler name"):
        sd_samplers.create_sampler("no such sampler", None)


# --- modules.extensions ---------------------------------------------------------------------------

def test_extensions_list_a1111s_fields_from_the_runtime(bound, tmp_path):
    from modules import extensions
    from modules.extensions import loader
    from modules.extensions.startup import ExtensionSet
    from tests.extensions.test_manage import commit_file, git

    clone = tmp_path / "extensions" / "sd-demo"
    clone.mkdir(parents=True)
    git(clone, "init", "-q", "-b", "main")
    commit = commit_file(clone, "scripts/demo.py", "LEVEL = 1\n")
    git(clone, "remote", "add", "origin", "https://example.com/sd-demo.git")
    shipped, off = tmp_path / "builtin" / "shipped", tmp_path / "extensions" / "off"
    shipped.mkdir(parents=True)
    off.mkdir()
    bound.extensions = ExtensionSet([loader.Extension("shipped", shipped), loader.Extension("sd-demo", clone),
                                     loader.Extension("off", off, enabled=False)], frozenset({"shipped"}), True)

    listed = extensions.extensions
    assert [(e.name, e.enabled, e.is_builtin) for e in listed] == [("shipped", True, True), ("sd-demo", True, False),
                                                                  ("off", False, False)]
    demo = listed[1]
    assert (demo.path, demo.remote, demo.branch, demo.commit_hash, demo.version) == (
        str(clone), "https://example.com/sd-demo.git", "main", commit, commit[:8])
    assert listed[0].remote is None and listed[0].commit_hash is None  # not a git clone
    assert [e.name for e in extensions.active()] == ["shipped", "sd-demo"]
    assert extensions.extensions is listed  # the same objects on every read: status and can_update stick
    assert extensions.find_extension(str(clone / "scripts" / "demo.py")) is demo
    assert [f.filename for f in demo.list_files("scripts", ".py")] == ["demo.py"]
    assert isinstance(demo, extensions.Extension)


def test_extension_folders_follow_the_paths(monkeypatch, tmp_path):
    from modules import extensions, paths

    monkeypatch.setattr(paths, "extensions_dir", str(tmp_path / "ext"))
    assert extensions.extensions_dir == str(tmp_path / "ext")
    assert extensions.extensions_builtin_dir == paths.extensions_builtin_dir


def test_extensions_outside_the_app_are_none(monkeypatch):
    from modules import extensions

    monkeypatch.setattr(shared, "_bound", [])
    assert extensions.extensions == [] and extensions.active() == []


# --- modules.styles -------------------------------------------------------------------------------

def test_style_database_reads_applies_and_saves(tmp_path):
    from modules import styles

    path = tmp_path / "styles.csv"
    path.write_text("name,prompt,negative_prompt\nframed,\"{prompt}, in a frame\",blurry\nsunny,sunny day,\n",
                    encoding="utf-8")
    database = styles.StyleDatabase([path])
    assert database.styles["framed"] == styles.PromptStyle("framed", "{prompt}, in a frame", "blurry", str(path))
    assert database.apply_styles_to_prompt("a cat", ["framed", "sunny"]) == "a cat, in a frame, sunny day"
    assert database.apply_negative_styles_to_prompt("ugly", ["framed", "unknown"]) == "ugly, blurry"
    assert database.get_style_prompts(["unknown"]) == [""]
    database.styles["night"] = styles.PromptStyle("night", "at night", "day", None)
    database.save_styles()
    assert styles.StyleDatabase(str(path)).styles["night"].negative_prompt == "day"
    assert styles.merge_prompts("{prompt} art", "cat") == "cat art"


def test_shared_prompt_styles_is_a_style_database(bound):
    from modules import styles

    assert isinstance(shared.prompt_styles, styles.StyleDatabase)
    assert shared.prompt_styles.path == bound.config.styles_file


def test_create_binary_mask_thresholds_transparency():
    painted = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    painted.putpixel((1, 0), (0, 0, 0, 200))
    assert list(processing.create_binary_mask(painted).getdata()) == [0, 255]
    assert list(processing.create_binary_mask(painted, round=False).getdata()) == [0, 200]
    assert processing.create_binary_mask(Image.new("RGB", (1, 1), WHITE)).getpixel((0, 0)) == 255


def test_state_fields_extensions_read():
    state = shared.State()
    state.begin("txt2img")
    assert state.job == "txt2img" and len(state.job_timestamp) == 14 and state.time_start is not None
    state.assign_current_image("preview")
    assert state.current_image == "preview" and state.id_live_preview == 1
    state.stop_generating()
    assert state.dict()["stopping_generation"] is True and state.dict()["job"] == "txt2img"


def test_save_image_runs_the_image_saved_callbacks(tmp_path):
    from modules import script_callbacks

    seen = []

    def before(params):
        params.pnginfo["extra"] = "added by a callback"
        params.filename = params.filename.replace(".png", "-renamed.png")

    script_callbacks.on_before_image_saved(before)
    script_callbacks.on_image_saved(lambda params: seen.append(params.filename))
    try:
        name, _ = images.save_image(Image.new("RGB", (4, 4)), str(tmp_path), "", seed=7, info="cat\nSteps: 1",
                                    existing_info={"kept": "yes"})
    finally:
        script_callbacks.clear_callbacks()
    assert name.endswith("00000-7-renamed.png") and seen == [name]
    geninfo, items = images.read_info_from_image(Image.open(name))
    assert geninfo == "cat\nSteps: 1" and items["extra"] == "added by a callback" and items["kept"] == "yes"


def test_save_image_as_jpeg_keeps_the_infotext_in_exif(tmp_path):
    name, _ = images.save_image(Image.new("RGB", (4, 4)), str(tmp_path), "", seed=1, extension="jpg", info="dog")
    assert images.read_info_from_image(Image.open(name))[0] == "dog"


def test_the_engine_extensions_package_imports_nothing_for_a1111s_names():
    from tests.test_layering import imported_by

    loaded = imported_by("modules.extensions")
    assert "modules.extensions.a1111_extensions" not in loaded and "modules.runtime" not in loaded
