"""Images with infotext on disk: PNG/JPEG/WebP metadata round trips, atomic writes, A1111 names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PIL import Image

from modules.infotext import files
from modules.infotext.files import expand_pattern, filename_tokens, output_path, read_infotext, save_image

INFOTEXT = 'a "cabin", 漢字 🙂\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 8x8'


def picture() -> Image.Image:
    return Image.new("RGB", (8, 8), (200, 40, 10))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_metadata_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    save_image(picture(), path, INFOTEXT)
    assert read_infotext(path) == INFOTEXT
    with Image.open(path) as image:
        assert image.size == (8, 8)


def test_png_uses_a_text_chunk_named_parameters(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    save_image(picture(), path, INFOTEXT)
    with Image.open(path) as image:
        assert image.text["parameters"] == INFOTEXT


def test_failed_encode_leaves_no_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(files, "_encode", broken)
    with pytest.raises(OSError, match="disk full"):
        save_image(picture(), tmp_path / "out.png", INFOTEXT)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.png"
    save_image(picture(), path, "first")
    monkeypatch.setattr(files, "_encode", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        save_image(picture(), path, "second")
    assert read_infotext(path) == "first"


def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported image format 'bmp'"):
        save_image(picture(), tmp_path / "x.bmp", "")


def tokens(**overrides) -> dict[str, str]:
    values = dict(seed=2389164790, steps=20, cfg=7.0, sampler="DPM++ 2M", model_name="v1-5", model_hash="6ce0161689",
                  prompt="a cozy: cabin / in the woods, (snow:1.2)", width=512, height=768, batch_number=1,
                  now=dt.datetime(2024, 7, 27, 13, 5, 9))
    return filename_tokens(**{**values, **overrides})


def test_default_name_counts_up_in_the_dated_folder(tmp_path: Path) -> None:
    first = output_path(tmp_path, "txt2img-images", tokens())
    assert first == tmp_path / "txt2img-images" / "2024-07-27" / "00000-2389164790.png"
    first.parent.mkdir(parents=True)
    (first.parent / "00011-123.png").write_bytes(b"")
    assert output_path(tmp_path, "txt2img-images", tokens()).name == "00012-2389164790.png"


def test_pattern_tokens_are_expanded_and_sanitised() -> None:
    name = expand_pattern("[seed]-[steps]-[cfg]-[sampler]-[model_name]-[model_hash]-[width]x[height]-[prompt_words]", tokens())
    assert name == "2389164790-20-7-DPM++ 2M-v1-5-6ce0161689-512x768-a cozy cabin in the woods snow 1"  # 8 words
    assert expand_pattern("[date] [datetime] [batch_number] [unknown]", tokens()) == "2024-07-27 20240727130509 1 [unknown]"
    assert len(tokens()["prompt_hash"]) == 8
    assert expand_pattern('bad<>:"/\\|?*name...', tokens()) == "bad_________name"
    assert len(expand_pattern("x" * 500, tokens())) == 128


def test_unknown_output_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown output kind"):
        output_path(tmp_path, "elsewhere", tokens())
