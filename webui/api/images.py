"""Images in API bodies: base64 in, raw base64 PNG out (with the ``parameters`` text chunk).

A1111 accepts a bare base64 string or a ``data:image/...;base64,`` URL; it can also fetch
http(s) URLs behind a setting, which we do not offer (the request says so, naming the field).
"""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from webui.api.errors import field_error

# Decoded images are sized from their header and refused before Pillow allocates them: one image
# may have 50 megapixels (a 48 MP phone photo; 150 MB as RGB), one request's images together 100.
MAX_PIXELS = 50_000_000
MAX_REQUEST_PIXELS = 100_000_000


class PixelBudget:
    """The pixels one request's images may still take together, so that a small body of
    highly compressible images cannot make the server hold gigabytes."""

    def __init__(self, total: int = MAX_REQUEST_PIXELS):
        self.total = total
        self.left = total

    def take(self, field: str, width: int, height: int) -> None:
        if width * height > self.left:
            raise field_error(field, f"image is {width}x{height}; one request's images may have at most "
                                     f"{self.total} pixels together")
        self.left -= width * height


def decode_image(text: object, field: str, budget: PixelBudget | None = None) -> Image.Image:
    """The image in a base64 string (``data:`` prefix optional); 422 naming ``field`` when it is not one,
    or when it is larger than MAX_PIXELS or than what ``budget`` has left."""
    if not isinstance(text, str) or not text.strip():
        raise field_error(field, "expected a base64-encoded image, got an empty value")
    text = text.strip()
    if text.startswith(("http://", "https://")):
        raise field_error(field, "image URLs are not fetched; send the image as base64")
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or ";base64" not in header:
            raise field_error(field, "a data: URL must be base64-encoded (data:image/png;base64,...)")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise field_error(field, "not valid base64") from None
    try:
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > MAX_PIXELS:
            raise field_error(field, f"image is {image.width}x{image.height}, more than {MAX_PIXELS} pixels")
        if budget is not None:
            budget.take(field, image.width, image.height)
        image.load()
    except Image.DecompressionBombError as error:  # Pillow's own bound, met before ours for some formats
        raise field_error(field, f"image is too large to decode ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise field_error(field, f"not a readable image ({type(error).__name__}: {error})") from None
    return image


def encode_png(image: Image.Image, infotext: str | None = None) -> str:
    """Raw base64 PNG; the image's own text chunks are kept, ``infotext`` becomes ``parameters``."""
    info = PngImagePlugin.PngInfo()
    texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    if infotext is not None:
        texts["parameters"] = infotext
    for key, value in texts.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
