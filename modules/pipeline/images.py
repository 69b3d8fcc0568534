"""Pixel-side helpers for img2img and inpainting: A1111's resize modes, mask preparation,
the only-masked crop region, the "fill" masked content, and pasting results back.
"""

from __future__ import annotations


import numpy as np
from PIL import Image, ImageFilter, ImageOps

from modules.params import ResizeMode  # noqa: F401 - re-exported for the pipeline's callers


def resize_image(image: Image.Image, width: int, height: int, mode: ResizeMode) -> Image.Image:
    image = image.convert("RGB")
    if mode in (ResizeMode.JUST_RESIZE, ResizeMode.LATENT_UPSCALE):
        return image.resize((width, height), Image.Resampling.LANCZOS)
    if mode == ResizeMode.CROP_AND_RESIZE:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return _resize_and_fill(image, width, height)


def _resize_and_fill(image: Image.Image, width: int, height: int) -> Image.Image:
    """Fit inside, centre it, and fill the bars by stretching the image's outermost rows or columns (as A1111)."""
    scale = min(width / image.width, height / image.height)
    fitted = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    left, top = (width - fitted.width) // 2, (height - fitted.height) // 2
    canvas.paste(fitted, (left, top))
    if top > 0:
        canvas.paste(fitted.crop((0, 0, fitted.width, 1)).resize((fitted.width, top)), (left, 0))
        bottom = height - top - fitted.height
        if bottom > 0:
            edge = fitted.crop((0, fitted.height - 1, fitted.width, fitted.height))
            canvas.paste(edge.resize((fitted.width, bottom)), (left, top + fitted.height))
    if left > 0:
        canvas.paste(fitted.crop((0, 0, 1, fitted.height)).resize((left, fitted.height)), (0, top))
        right = width - left - fitted.width
        if right > 0:
            edge = fitted.crop((fitted.width - 1, 0, fitted.width, fitted.height))
            canvas.paste(edge.resize((right, fitted.height)), (left + fitted.width, top))
    return canvas


def prepare_mask(mask: Image.Image, invert: bool, blur: int) -> Image.Image:
    """Greyscale mask (white = repaint), inverted for "Inpaint not masked", Gaussian-blurred by ``blur`` px."""
    mask = mask.convert("L")
    if invert:
        mask = ImageOps.invert(mask)
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask


def masked_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The crop box for "Only masked": the mask's bounding box grown by ``padding`` and then to the
    target aspect ratio, kept inside the image. None when the mask is empty."""
    box = mask.point(lambda v: 255 if v > 0 else 0).getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box[0] - padding, box[1] - padding, box[2] + padding, box[3] + padding
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, mask.width), min(y2, mask.height)
    ratio = width / height
    box_w, box_h = x2 - x1, y2 - y1
    if box_w / box_h < ratio:
        grow = min(round(box_h * ratio) - box_w, mask.width - box_w)
        x1 = max(0, min(x1 - grow // 2, mask.width - box_w - grow))
        x2 = x1 + box_w + grow
    else:
        grow = min(round(box_w / ratio) - box_h, mask.height - box_h)
        y1 = max(0, min(y1 - grow // 2, mask.height - box_h - grow))
        y2 = y1 + box_h + grow
    return x1, y1, x2, y2


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """"fill" masked content: the masked area takes the surrounding colours, smeared in by
    progressively smaller blurs of the unmasked image (A1111's ``masking.fill``)."""
    result = Image.new("RGBA", image.size, (0, 0, 0, 0))
    keep = ImageOps.invert(mask.convert("L"))
    source = Image.new("RGBA", image.size, (0, 0, 0, 0))
    source.paste(image.convert("RGBA"), mask=keep)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = source.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA") if radius else source
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


def overlay_original(result: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """Put the original back wherever the (blurred) mask is not fully white, weighted by the mask."""
    return Image.composite(result.convert("RGB"), original.convert("RGB"), mask.convert("L"))


def latent_mask(mask: Image.Image, latent_width: int, latent_height: int) -> np.ndarray:
    """The repaint mask at latent size, rounded to 0/1 as A1111 does (float32 [h, w], 1 = repaint)."""
    small = mask.convert("L").resize((latent_width, latent_height), Image.Resampling.LANCZOS)
    return np.around(np.asarray(small, dtype=np.float32) / 255.0)
