"""Upscaler model files: layout detection, scale, safe loading, tiled running."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from modules.upscalers.detect import UnknownArchitectureError, detect_architecture
from modules.upscalers.library import (
    TileSettings, UpscalerError, UpscalerLibrary, Upscaling, load_upscaler_model, scan_upscaler_models, target_size,
)
from modules.upscalers.tiling import tile_starts, upscale_tensor_tiled, image_to_tensor
from tests.upscalers import layouts


def shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("state, name, scale, layout", [
    (layouts.esrgan_old(steps=2), "ESRGAN", 4, "old keys"),
    (layouts.esrgan_old(steps=1), "ESRGAN", 2, "old keys"),
    (layouts.esrgan_old(steps=0), "ESRGAN", 1, "old keys"),
    (layouts.esrgan_new(steps=2), "ESRGAN", 4, "new keys"),
    (layouts.esrgan_new(steps=2, unshuffle=2), "ESRGAN", 2, "new keys"),  # RealESRGAN_x2plus
    (layouts.esrgan_new(steps=2, unshuffle=4), "ESRGAN", 1, "new keys"),
    (layouts.compact(scale=4), "RealESRGAN compact", 4, "SRVGGNetCompact"),
    (layouts.compact(scale=2), "RealESRGAN compact", 2, "SRVGGNetCompact"),
    (layouts.swinir("pixelshuffle", 2), "SwinIR", 2, "pixelshuffle"),
    (layouts.swinir("pixelshuffle", 3), "SwinIR", 3, "pixelshuffle"),
    (layouts.swinir("pixelshuffle", 4), "SwinIR", 4, "pixelshuffle"),
    (layouts.swinir("pixelshuffledirect", 4), "SwinIR", 4, "pixelshuffledirect"),
    (layouts.swinir("nearest+conv", 4), "SwinIR", 4, "nearest+conv"),
    (layouts.swinir("none", 1), "SwinIR", 1, "no upsampler"),
    (layouts.dat(2), "DAT", 2, "pixelshuffle"),
    (layouts.dat(4), "DAT", 4, "pixelshuffle"),
])
def test_architecture_and_scale_are_read_from_the_key_layout(state, name, scale, layout):
    found = detect_architecture(shapes(state))
    assert (found.name, found.scale, found.layout) == (name, scale, layout)


def test_a_checkpoint_of_another_kind_is_not_taken_for_an_upscaler():
    with pytest.raises(UnknownArchitectureError, match="not an ESRGAN"):
        detect_architecture({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)})


@pytest.mark.parametrize("state, scale", [
    (layouts.esrgan_old(steps=2), 4), (layouts.esrgan_new(steps=1), 2),
    (layouts.esrgan_new(steps=2, unshuffle=2), 2), (layouts.compact(scale=4), 4),
])
def test_native_models_load_from_safetensors_and_upscale_by_their_scale(tmp_path, state, scale):
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    model = load_upscaler_model(path)
    out = model.net(torch.rand(1, 3, 12, 16))
    assert out.shape == (1, 3, 12 * scale, 16 * scale)
    assert not model.net.training and not any(p.requires_grad for p in model.net.parameters())


def test_old_and_new_esrgan_keys_give_the_same_net(tmp_path):
    old = layouts.esrgan_old(nb=2, steps=2)
    save_file(old, str(tmp_path / "old.safetensors"))
    save_file(layouts.old_to_new_by_hand(old, steps=2), str(tmp_path / "new.safetensors"))
    x = torch.rand(1, 3, 10, 10)
    a = load_upscaler_model(tmp_path / "old.safetensors").net(x)
    b = load_upscaler_model(tmp_path / "new.safetensors").net(x)
    assert torch.equal(a, b)


def test_real_esrgan_pickles_load_their_ema_weights_through_the_weights_only_loader(tmp_path):
    state = layouts.compact(scale=2)
    torch.save({"params_ema": state, "params": {k: v * 0 for k, v in state.items()}}, tmp_path / "x2.pth")
    model = load_upscaler_model(tmp_path / "x2.pth")
    assert torch.equal(model.net.body[0].weight, state["body.0.weight"])


class _Payload:
    def __reduce__(self):
        return (print, ("ran code from the file",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"params": layouts.compact(), "x": _Payload()}, path)
    with pytest.raises(Exception, match="(?i)weights.only|unsafe|not allowed|refus"):
        load_upscaler_model(path)


def test_swinir_and_dat_go_to_spandrel_and_are_refused_with_the_reason_when_it_cannot_load(tmp_path):
    path = tmp_path / "swin.safetensors"
    save_file(layouts.swinir("pixelshuffle", 2), str(path))
    try:
        import spandrel  # noqa: F401
    except Exception:
        with pytest.raises(UpscalerError, match="SwinIR models are loaded through the spandrel package"):
            load_upscaler_model(path)
    else:
        pytest.skip("spandrel imports here; see test_spandrel_agrees_on_real_architectures")


def test_spandrel_agrees_on_real_architectures():
    """Built with spandrel's own architecture classes (the official layouts), when it imports."""
    try:
        from spandrel.architectures.SwinIR import SwinIR
        from spandrel.architectures.DAT import DAT
        import spandrel
    except Exception as error:
        pytest.skip(f"spandrel cannot be imported here: {type(error).__name__}")
    for net, scale in ((SwinIR(upscale=2, embed_dim=12, depths=[1], num_heads=[2], window_size=4, upsampler="pixelshuffle"), 2),
                       (DAT(upscale=4, embed_dim=12, depth=[2], num_heads=[2], split_size=[2, 4]), 4)):
        state = net.state_dict()
        assert detect_architecture(shapes(state)).scale == scale
        assert spandrel.ModelLoader().load_from_state_dict(state).scale == scale


def test_files_are_scanned_per_folder_and_safetensors_wins_over_a_pickle_of_the_same_name(tmp_path):
    (tmp_path / "ESRGAN" / "sub").mkdir(parents=True)
    (tmp_path / "RealESRGAN").mkdir()
    save_file(layouts.compact(), str(tmp_path / "ESRGAN" / "sub" / "4x-Sharp.safetensors"))
    torch.save(layouts.compact(), tmp_path / "ESRGAN" / "4x-Sharp.pth")
    torch.save(layouts.compact(scale=2), tmp_path / "RealESRGAN" / "RealESRGAN_x2plus.pth")
    (tmp_path / "ESRGAN" / "notes.txt").write_text("not a model")
    files = scan_upscaler_models([("ESRGAN", [tmp_path / "ESRGAN"]), ("RealESRGAN", [tmp_path / "RealESRGAN", tmp_path / "missing"])])
    assert [(f.name, f.path.suffix, f.folder, f.nominal_scale) for f in files] == [
        ("4x-Sharp", ".safetensors", "ESRGAN", 4), ("RealESRGAN_x2plus", ".pth", "RealESRGAN", 2)]


@pytest.mark.parametrize("length, tile, overlap, expected", [
    (100, 200, 8, [0]), (64, 32, 8, [0, 16, 32]), (100, 32, 8, [0, 22, 45, 68]), (40, 32, 0, [0, 8]),
])
def test_tile_positions_cover_the_image_and_overlap_by_at_least_the_setting(length, tile, overlap, expected):
    starts = tile_starts(length, tile, overlap)
    assert starts == expected
    assert starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def _model(tmp_path, state, name="net.safetensors"):
    save_file(state, str(tmp_path / name))
    return load_upscaler_model(tmp_path / name).net


def test_tiled_equals_untiled_when_the_overlap_covers_the_receptive_field(tmp_path):
    # compact with 2 hidden convs: 4 stacked 3x3 convs, receptive radius 4 input pixels; with
    # overlap 16 every blended pixel lies at least 8 pixels inside both tiles that cover it.
    net = _model(tmp_path, layouts.compact(convs=2, scale=4))
    image = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(1))
    whole = net(image)
    tiled = upscale_tensor_tiled(net, image, 4, tile=32, overlap=16)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < 1e-5


def test_tiled_esrgan_stays_close_to_untiled_with_the_default_overlap(tmp_path):
    # RRDB's receptive field (about 20 input pixels) exceeds A1111's default overlap of 8, so
    # tiles differ slightly near their borders; the blend keeps the difference small
    # (measured: max 0.0001 of the 0..1 range, i.e. under a tenth of one 8-bit level).
    net = _model(tmp_path, layouts.esrgan_new(nf=8, nb=1, steps=2))
    image = image_to_tensor(Image.fromarray(np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)), "cpu", torch.float32)
    whole = net(image).clamp(0, 1)
    tiled = upscale_tensor_tiled(net, image, 4, tile=24, overlap=8).clamp(0, 1)
    difference = (tiled - whole).abs()
    print(f"ESRGAN tiled vs untiled: max {difference.max().item():.4f}, mean {difference.mean().item():.5f}")
    assert difference.max().item() < 1 / 255
    assert difference.mean().item() < 1e-4


def test_interrupt_stops_between_tiles(tmp_path):
    net = _model(tmp_path, layouts.compact())
    calls = []
    with pytest.raises(InterruptedError):
        upscale_tensor_tiled(lambda t: calls.append(1) or net(t), torch.rand(1, 3, 64, 64), 4, 16, 4,
                             should_stop=lambda: len(calls) >= 2)
    assert len(calls) == 2


def test_a_named_model_upscales_to_the_size_asked_repeating_passes_as_a1111_does(tmp_path):
    (tmp_path / "ESRGAN").mkdir()
    save_file(layouts.compact(scale=2), str(tmp_path / "ESRGAN" / "2x-tiny.safetensors"))
    library = UpscalerLibrary([("ESRGAN", [tmp_path / "ESRGAN"])])
    passes = []
    upscaling = Upscaling(library, {"ESRGAN": TileSettings(16, 4)}, should_stop=lambda: passes.append(1) and False)
    image = Image.new("RGB", (20, 12), (120, 30, 200))
    assert target_size(image, 3.5) == (64, 40)  # 70x42 rounded down to multiples of 8
    out = upscaling.resize(image, target_size(image, 3.5), "2x-tiny")
    assert out.size == (64, 40)
    assert library.names() == ("None", "Lanczos", "Nearest", "2x-tiny")
    with pytest.raises(UpscalerError, match="unknown upscaler 'nope'; valid: None, Lanczos, Nearest, 2x-tiny"):
        upscaling.resize(image, (40, 24), "nope")
