"""img2img and inpainting end to end on tiny models: geometry, masks, fills, infotext."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from modules.config import DeviceFlags
from modules.device.policy import choose_device_policy
from modules.infotext.parse import parse_infotext
from modules.models.files import CheckpointFile
from modules.models.load import load_model
from modules.params import Img2ImgParams, InpaintFill, ParamsError, Txt2ImgParams
from modules.pipeline.generate import generate_txt2img
from modules.pipeline.images import ResizeMode, masked_region, resize_image
from modules.pipeline.img2img import generate_img2img
from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint
from tests.pipeline.test_sampling_run import model  # noqa: F401  (module-scoped tiny model fixture)


def photo(width: int = 32, height: int = 32) -> Image.Image:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]
    array[..., 1] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    array[..., 2] = 90
    return Image.fromarray(array)


def square_mask(width: int = 32, height: int = 32, box=(8, 8, 16, 16)) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask


def params(**changes) -> Img2ImgParams:
    base = dict(prompt="a hat", steps=4, width=32, height=32, seed=11, init_images=(photo(),), mask_blur=0)
    return Img2ImgParams(**{**base, **changes})


def outside(array: np.ndarray, box) -> np.ndarray:
    keep = np.ones(array.shape[:2], dtype=bool)
    keep[box[1]:box[3], box[0]:box[2]] = False
    return array[keep]


def test_inpaint_whole_picture_keeps_unmasked_pixels_exactly(model) -> None:  # noqa: F811
    # Tolerance: exact. Outside the (unblurred) mask the original pixels are put back, not the VAE's round trip.
    result = generate_img2img(model, params(mask=square_mask()), None)[0].image
    original, out = np.asarray(photo()), np.asarray(result)
    assert np.array_equal(outside(out, (8, 8, 16, 16)), outside(original, (8, 8, 16, 16)))
    assert not np.array_equal(out[8:16, 8:16], original[8:16, 8:16])


def test_inpaint_only_masked_pastes_back_at_full_size(model) -> None:  # noqa: F811
    big = photo(64, 48)
    mask = square_mask(64, 48, (40, 8, 48, 16))
    chosen = params(init_images=(big,), mask=mask, inpaint_full_res=True, inpaint_full_res_padding=4)
    result = generate_img2img(model, chosen, None)[0]
    assert result.image.size == (64, 48)
    out = np.asarray(result.image)
    assert np.array_equal(outside(out, (40, 8, 48, 16)), outside(np.asarray(big), (40, 8, 48, 16)))
    fields = parse_infotext(result.infotext)
    assert (fields["Denoising strength"], fields["Mask blur"], fields["Inpaint area"], fields["Masked area padding"]) == (
        "0.75", "0", "Only masked", "4")


def test_masked_region_has_the_target_aspect_and_holds_the_mask() -> None:
    mask = square_mask(100, 60, (50, 20, 60, 30))
    x1, y1, x2, y2 = masked_region(mask, padding=5, width=64, height=32)
    assert (x2 - x1) / (y2 - y1) == pytest.approx(2.0, rel=0.05)
    assert x1 <= 45 and y1 <= 15 and x2 >= 65 and y2 >= 35
    assert 0 <= x1 and x2 <= 100 and 0 <= y1 and y2 <= 60


@pytest.mark.parametrize("mode", list(ResizeMode))
def test_resize_modes_give_the_target_size(mode: ResizeMode) -> None:
    assert resize_image(photo(40, 20), 32, 32, mode).size == (32, 32)


def test_crop_and_resize_crops_while_resize_and_fill_stretches_the_edges() -> None:
    wide = Image.new("RGB", (40, 20), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 5, 20))  # a red left edge
    cropped = np.asarray(resize_image(wide, 20, 20, ResizeMode.CROP_AND_RESIZE))
    assert cropped[:, 0, 2].min() > 200  # the red edge was cropped away
    filled = np.asarray(resize_image(wide, 40, 40, ResizeMode.RESIZE_AND_FILL))
    assert np.array_equal(filled[0], filled[10])  # the bar repeats the top row
    assert filled[:, 0, 0].min() > 200  # the red edge reaches the corners


@pytest.mark.parametrize("fill", list(InpaintFill))
def test_every_masked_content_mode_runs_and_keeps_the_outside(model, fill: InpaintFill) -> None:  # noqa: F811
    result = generate_img2img(model, params(mask=square_mask(), inpainting_fill=fill), None)[0]
    out = np.asarray(result.image)
    assert np.array_equal(outside(out, (8, 8, 16, 16)), outside(np.asarray(photo()), (8, 8, 16, 16)))
    label = parse_infotext(result.infotext).get("Masked content")
    assert label == (None if fill == InpaintFill.ORIGINAL else {0: "fill", 2: "latent noise", 3: "latent nothing"}[fill])


def test_plain_img2img_strength_and_infotext(model) -> None:  # noqa: F811
    near = generate_img2img(model, params(denoising_strength=0.1), None)[0]
    far = generate_img2img(model, params(denoising_strength=0.9), None)[0]
    original = np.asarray(photo(), dtype=np.float32)
    assert np.abs(np.asarray(near.image, dtype=np.float32) - original).mean() < np.abs(
        np.asarray(far.image, dtype=np.float32) - original).mean()
    fields = parse_infotext(far.infotext)
    assert fields["Denoising strength"] == "0.9" and "Mask blur" not in fields


def test_latent_upscale_resize_mode(model) -> None:  # noqa: F811
    result = generate_img2img(model, params(init_images=(photo(16, 16),), resize_mode=ResizeMode.LATENT_UPSCALE), None)[0]
    assert result.image.size == (32, 32)


def test_nine_channel_inpainting_model(tmp_path: Path) -> None:
    unet, vae, _ = tiny_configs(inpainting=True)
    path = tmp_path / "inpaint.safetensors"
    save_file(make_ldm_checkpoint(unet, vae, clip_l_text(32, 2, 64), seed=6), str(path))
    inpaint = load_model(CheckpointFile.from_file(path, path.name, "4" * 64), None,
                         choose_device_policy(DeviceFlags(), cuda_available=False))
    assert inpaint.detected.family.is_inpainting
    result = generate_img2img(inpaint, params(mask=square_mask()), None)[0].image
    assert np.array_equal(outside(np.asarray(result), (8, 8, 16, 16)), outside(np.asarray(photo()), (8, 8, 16, 16)))
    assert generate_txt2img(inpaint, Txt2ImgParams(prompt="x", steps=2, width=16, height=16, seed=1), None)[0].image.size == (16, 16)


def test_mask_size_mismatch_is_refused() -> None:
    with pytest.raises(ParamsError, match="mask size 16x16 differs"):
        params(width=64, height=64, mask=square_mask(16, 16)).validate()
