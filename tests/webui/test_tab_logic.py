"""The tabs' logic without a browser: masks from editors, settings changes, extensions, saving, progress."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modules.config import parse_config
from modules.infotext.files import read_infotext
from modules.options import Options
from modules.params import ParamsError, Txt2ImgParams
from modules.extensions.startup import ExtensionSet
from modules.runtime import Runtime, save_options_from
from modules.styles import Style, delete_style, read_styles, save_style
from tests.browser.conftest import write_tiny_model
from webui.progress import progress_payload, wait_for_results
from webui.tabs.extensions import disabled_after, extension_folders
from webui.tabs.img2img import editor_layers_mask, init_and_mask, sketch_mask
from webui.tabs.output_panel import open_folder, result_record, save_selected
from webui.tabs.settings import option_changes


def test_inpaint_mask_is_wherever_a_layer_has_paint() -> None:
    layer = Image.new("RGBA", (16, 8), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (0, 0, 4, 8))
    second = Image.new("RGBA", (16, 8), (0, 0, 0, 0))
    second.putpixel((15, 7), (10, 10, 10, 1))
    mask = np.asarray(editor_layers_mask({"background": None, "layers": [layer, second], "composite": None}))
    assert mask[:, :4].min() == 255 and mask[7, 15] == 255 and mask[:, 4:15].max() == 0
    assert editor_layers_mask({"layers": [Image.new("RGBA", (4, 4))]}) is None


def test_inpaint_sketch_mask_is_where_the_picture_changed() -> None:
    background = Image.new("RGB", (8, 8), (10, 20, 30))
    painted = background.copy()
    painted.putpixel((3, 2), (200, 0, 0))
    mask = np.asarray(sketch_mask(background, painted))
    assert mask[2, 3] == 255 and mask.sum() == 255
    assert sketch_mask(background, background.copy()) is None


def test_each_mode_reads_its_own_inputs() -> None:
    image = Image.new("RGBA", (8, 8), (0, 0, 255, 0))  # fully transparent: flattened onto white
    empty = {"image": None, "sketch": None, "inpaint": None, "inpaint_sketch": None, "upload_image": None,
             "upload_mask": None}
    init, mask = init_and_mask("img2img", {**empty, "image": image})
    assert init.mode == "RGB" and init.getpixel((0, 0)) == (255, 255, 255) and mask is None
    with pytest.raises(ParamsError) as missing:
        init_and_mask("img2img", empty)
    assert missing.value.field == "init_images"
    with pytest.raises(ParamsError) as no_mask:
        init_and_mask("inpaint_upload", {**empty, "upload_image": image})
    assert no_mask.value.field == "mask"
    unpainted = {"background": image, "layers": [], "composite": image}
    with pytest.raises(ParamsError, match="paint over"):
        init_and_mask("inpaint", {**empty, "inpaint": unpainted})


def test_settings_changes_are_typed_and_only_what_changed() -> None:
    current = Options()
    values = {"jpeg_quality": 90.0, "samples_format": "png", "sd_checkpoints_limit": 0, "eta_ddim": 0.2,
              "txt2img_default_steps": 20.0}
    assert option_changes(current, values) == {"jpeg_quality": 90, "eta_ddim": 0.2}
    assert option_changes(Options(sd_checkpoints_limit=2), {"sd_checkpoints_limit": 0}) == {"sd_checkpoints_limit": None}


def test_extensions_list_and_disabled_names(tmp_path: Path) -> None:
    for name in ("beta", "alpha", ".git", "__pycache__"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.md").write_text("x")
    assert extension_folders(tmp_path) == ["alpha", "beta"]
    assert disabled_after(["alpha", "beta"], ["alpha"], ("gone",)) == ("beta", "gone")
    assert disabled_after(["alpha", "beta"], ["alpha", "beta"], ("beta",)) == ()


def test_styles_are_saved_and_deleted_atomically(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    save_style(path, Style("Film", "{prompt}, grainy, \"35mm\"", "digital"))
    save_style(path, Style(" Noir ", "black and white"))
    assert read_styles(path) == {"Film": Style("Film", "{prompt}, grainy, \"35mm\"", "digital"),
                                 "Noir": Style("Noir", "black and white", "")}
    assert path.read_text().splitlines()[0] == "name,prompt,negative_prompt"
    assert list(delete_style(path, "Film")) == ["Noir"] and list(read_styles(path)) == ["Noir"]
    with pytest.raises(KeyError):
        delete_style(path, "Film")
    with pytest.raises(ValueError, match="name"):
        save_style(path, Style("  "))
    assert [p.name for p in tmp_path.iterdir()] == ["styles.csv"]  # no temporary file left behind


def test_open_folder_without_a_display_says_where_the_images_are(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    message = open_folder(tmp_path / "outputs")
    assert "Cannot open" in message and str(tmp_path / "outputs") in message


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    root = tmp_path_factory.mktemp("data")
    write_tiny_model(root / "models" / "Stable-diffusion", "tiny.safetensors", seed=4)
    made = Runtime(parse_config(["--data-dir", str(root)], root), cuda_available=False)
    made.load_extensions(ExtensionSet())  # the program's scripts/ (Prompt matrix), as the server loads them
    yield made
    made.jobs.shutdown(timeout=30)


def test_saving_settings_choose_format_pattern_and_folder(runtime: Runtime) -> None:
    options = Options(samples_format="webp", jpeg_quality=70, samples_filename_pattern="[seed]-[steps]",
                      outdir_txt2img_samples="elsewhere", grid_save=False)
    save = save_options_from(options, runtime.config.data_dir)
    job = runtime.submit(Txt2ImgParams(prompt="a", steps=2, width=64, height=64, seed=11, n_iter=2), save=save)
    images, errors = wait_for_results(runtime, [job.id])
    assert errors == [] and len(images) == 2
    paths = sorted(image.path for image in images)
    assert [p.name[6:] for p in paths] == ["11-2.webp", "12-2.webp"]
    assert all(p.parent.parent == runtime.config.data_dir / "elsewhere" for p in paths)
    assert read_infotext(paths[0]) == images[0].infotext
    assert not (runtime.config.outputs_dir / "txt2img-grids").exists()  # grids off


def test_not_saving_leaves_no_file_but_the_ui_can_still_save_one(runtime: Runtime, tmp_path: Path) -> None:
    save = save_options_from(Options(samples_save=False, grid_save=False), runtime.config.data_dir)
    job = runtime.submit(Txt2ImgParams(prompt="b", steps=2, width=64, height=64, seed=5), save=save)
    images, _ = wait_for_results(runtime, [job.id])
    assert images[0].path is None
    saved = save_selected(result_record(images[0]), tmp_path)
    assert saved == tmp_path / "saved" / "5.png" and read_infotext(saved) == images[0].infotext


def test_progress_payload_reports_the_queue_and_the_running_job(runtime: Runtime) -> None:
    long_run = Txt2ImgParams(prompt="c", steps=150, width=64, height=64, n_iter=20)
    first = runtime.submit(long_run, preview_every=1)
    second = runtime.submit(long_run)
    try:
        deadline = time.monotonic() + 60
        while first.progress.preview is None and time.monotonic() < deadline:
            time.sleep(0.05)
        running = progress_payload(runtime, [first.id], None, time.monotonic())
        assert running["known"] and not running["done"] and running["queued"] == 0
        assert 0 < running["progress"] < 1 and running["eta"] > 0
        assert running["preview"].startswith("data:image/png;base64,")
        again = progress_payload(runtime, [first.id], running["preview_id"], time.monotonic())
        assert "preview" not in again or again["preview_id"] != running["preview_id"]
        waiting = progress_payload(runtime, [second.id], None, time.monotonic())
        assert waiting["queued"] == 1 and waiting["eta"] is None
    finally:
        first.interrupt()
        second.interrupt()
    wait_for_results(runtime, [first.id, second.id])
    assert progress_payload(runtime, [first.id, second.id], None, time.monotonic())["done"] is True
    assert progress_payload(runtime, ["job-unknown"], None, time.monotonic()) == {"known": False, "done": True}


def test_batch_mode_makes_one_job_per_image_saved_to_the_output_folder(runtime: Runtime, tmp_path: Path) -> None:
    from webui.tabs.img2img import img2img_submissions

    inputs, outputs, masks = tmp_path / "in", tmp_path / "out", tmp_path / "masks"
    for folder in (inputs, masks):
        folder.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(inputs / "b.png")
    Image.new("RGB", (64, 64), (10, 200, 10)).save(inputs / "a.webp", lossless=True)
    (inputs / "notes.txt").write_text("not an image")
    Image.new("L", (64, 64), 255).save(masks / "a.png")
    named = {"prompt": "p", "steps": 2, "width": 64, "height": 64, "denoising_strength": 0.5}
    images = {"input_dir": str(inputs), "output_dir": str(outputs), "mask_dir": str(masks)}
    submissions = img2img_submissions(runtime, named, "batch", images)
    assert [s.params.init_images[0].getpixel((0, 0)) for s in submissions] == [(10, 200, 10), (200, 10, 10)]
    assert submissions[0].params.mask is not None and submissions[1].params.mask is None
    assert all(s.save.folder("img2img-images") == outputs for s in submissions)
    with pytest.raises(ParamsError) as error:
        img2img_submissions(runtime, named, "batch", {**images, "input_dir": str(tmp_path / "missing")})
    assert error.value.field == "input_dir"


class BrokenScript:
    """Extension code that fails: its error is shown, the app goes on."""

    def title(self) -> str:
        return "Broken"

    def run(self, runtime, params, args, *, save=None):
        raise RuntimeError("boom")


def test_the_selected_script_runs_with_the_values_of_its_controls(runtime: Runtime) -> None:
    from webui.forms import script_arg_values
    from webui.tabs.generation import ScriptCall, Submission, run_script

    matrix = runtime.scripts.find("Prompt matrix", False)
    controls = [(arg, object()) for arg in matrix.args_info()]
    values = dict(zip((c for _, c in controls), [False, True, "positive", "comma", 4.0]))
    args = script_arg_values(values, controls)
    assert args == [False, True, "positive", "comma", 4] and isinstance(args[4], int)
    params = Txt2ImgParams(prompt="a house|red|tall", steps=2, width=64, height=64, seed=10)
    images, errors = run_script(runtime, ScriptCall(matrix, (Submission(params),), tuple(args)))
    assert errors == []
    assert [(image.infotext.split("\n")[0], image.seed) for image in images] == [
        ("a house", 10), ("a house, red", 11), ("a house, tall", 12), ("a house, red, tall", 13)]
    _, bad_args = run_script(runtime, ScriptCall(matrix, (Submission(params),), (False, False, "sideways")))
    assert bad_args and "prompt_type" in bad_args[0]
    _, failed = run_script(runtime, ScriptCall(BrokenScript(), (Submission(params),), ()))
    assert failed == ["Broken failed: RuntimeError: boom"]


def test_submit_jobs_validates_every_job_first(runtime: Runtime) -> None:
    from webui.tabs.generation import Submission, submit_jobs

    good = Submission(Txt2ImgParams(prompt="s", steps=2, width=64, height=64, seed=3))
    with pytest.raises(ParamsError) as error:
        submit_jobs(runtime, [good, Submission(Txt2ImgParams(width=65))])
    assert error.value.field == "width"
    ids = submit_jobs(runtime, [good])
    images, errors = wait_for_results(runtime, ids)
    assert errors == [] and images[0].seed == 3


def test_full_live_preview_is_decoded_at_image_size(runtime: Runtime) -> None:
    runtime.update_options({"show_progress_type": "Full"})
    try:
        full = runtime.submit(Txt2ImgParams(prompt="f", steps=2, width=64, height=64), preview_every=1)
        wait_for_results(runtime, [full.id])
    finally:
        runtime.update_options({"show_progress_type": "Approx cheap"})
    cheap = runtime.submit(Txt2ImgParams(prompt="f", steps=2, width=64, height=64), preview_every=1)
    wait_for_results(runtime, [cheap.id])
    assert full.progress.preview.size == (64, 64)  # through the VAE
    assert cheap.progress.preview.size == (32, 32)  # the latent's own size (this tiny VAE downsamples by 2)


def test_switching_the_vae_keeps_the_previous_one_on_failure(runtime: Runtime) -> None:
    from webui.top_bar import switch_vae, vae_choices

    assert vae_choices(runtime) == ["Automatic", "None"]
    value, message = switch_vae(runtime, "missing.safetensors")
    assert value == "Automatic" and message.startswith("VAE not changed:") and "missing.safetensors" in message
    assert runtime.options.current.sd_vae == "Automatic"
    value, message = switch_vae(runtime, "None")
    assert value == "None" and "the checkpoint's own VAE" in message and runtime.options.current.sd_vae == "None"
    switch_vae(runtime, "Automatic")
