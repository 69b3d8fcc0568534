"""Seeds and per-image noise against A1111's documented rules.

Expected noise is always computed here from plain ``torch.Generator`` draws,
following the documented definition, never from the module's own output.
"""

from __future__ import annotations

import random

import numpy
import pytest
import torch

from modules.sampling import noise as noise_module
from modules.sampling.noise import (
    RANDOM_SEED_BOUND,
    SEED_MAX,
    ImageNoise,
    NoiseSpec,
    RngSource,
    image_seeds,
    paste_centered,
    resolve_seed,
    slerp,
)

SHAPE = (4, 6, 5)  # small, non-square latent (C, H, W)


def reference_draws(seed: int, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
    """Consecutive draws of one CPU generator: A1111's documented CPU noise."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for shape in shapes]


def make_noise(seeds: tuple[int, ...], shape: tuple[int, int, int] = SHAPE, **fields) -> ImageNoise:
    return ImageNoise(NoiseSpec(seeds=seeds, latent_shape=shape, **fields))


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles between the dim-1 slices of two (C, H, W) tensors."""
    cosine = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))
    return torch.acos(cosine.clamp(-1.0, 1.0))


# -- resolve_seed -------------------------------------------------------------


def test_minus_one_resolves_in_range_and_differs_across_calls():
    seeds = {resolve_seed(-1) for _ in range(6)}
    assert all(0 <= seed < RANDOM_SEED_BOUND for seed in seeds)
    # Six 32-bit draws from the OS are all equal with probability ~2**-160.
    assert len(seeds) > 1


def test_any_negative_seed_asks_the_entropy_source():
    calls = []

    def entropy() -> int:
        calls.append(1)
        return 1234

    assert resolve_seed(-1, entropy) == 1234
    assert resolve_seed(-77, entropy) == 1234
    assert len(calls) == 2


def test_explicit_seeds_pass_through_without_entropy():
    def entropy() -> int:
        raise AssertionError("entropy must not be used for an explicit seed")

    assert resolve_seed(0, entropy) == 0
    assert resolve_seed(SEED_MAX, entropy) == SEED_MAX
    assert resolve_seed(42, entropy) == 42


@pytest.mark.parametrize("bad", [SEED_MAX + 1, 2**40])
def test_seed_above_32_bits_is_refused(bad):
    with pytest.raises(ValueError, match="seed: .*32-bit"):
        resolve_seed(bad)


@pytest.mark.parametrize("bad", [1.5, "12", None, True])
def test_non_integer_seed_is_refused(bad):
    with pytest.raises(TypeError, match="seed"):
        resolve_seed(bad)


@pytest.mark.parametrize("drawn", [-1, RANDOM_SEED_BOUND, 2**40])
def test_entropy_outside_the_seed_range_is_refused(drawn):
    with pytest.raises(ValueError, match="entropy"):
        resolve_seed(-1, lambda: drawn)


# -- image_seeds ----------------------------------------------------------------


def test_image_seeds_increment_without_variation():
    seeds, subseeds = image_seeds(100, 7, 0.0, 3)
    assert seeds == (100, 101, 102)
    assert subseeds == (7, 8, 9)


def test_image_seeds_with_variation_keep_the_seed_and_increment_the_subseed():
    seeds, subseeds = image_seeds(100, 7, 0.3, 3)
    assert seeds == (100, 100, 100)
    assert subseeds == (7, 8, 9)


@pytest.mark.parametrize(
    ("args", "error", "field"),
    [
        ((1, 2, 0.0, 0), ValueError, "count"),
        ((-1, 2, 0.0, 1), ValueError, "resolve"),
        ((1, -1, 0.0, 1), ValueError, "resolve"),
        ((1, 2, 1.5, 1), ValueError, "subseed_strength"),
        ((1, 2, float("nan"), 1), TypeError, "subseed_strength"),
    ],
)
def test_image_seeds_refuse_bad_input(args, error, field):
    with pytest.raises(error, match=field):
        image_seeds(*args)


# -- RNG source -------------------------------------------------------------------


def test_rng_source_labels_parse_and_unknown_is_refused():
    assert RngSource.from_label("cpu") is RngSource.CPU
    assert RngSource.from_label(" GPU ") is RngSource.GPU
    assert RngSource.from_label("NV") is RngSource.NV
    with pytest.raises(ValueError, match="RNG: unknown .*'TPU'"):
        RngSource.from_label("TPU")


def test_nv_source_is_refused_with_a_clear_message():
    with pytest.raises(NotImplementedError, match="'NV'.*not supported"):
        make_noise((1,), source=RngSource.NV)


def test_gpu_source_on_cpu_device_draws_the_cpu_noise():
    gpu = make_noise((5, 6), source=RngSource.GPU).initial_noise()
    cpu = make_noise((5, 6), source=RngSource.CPU).initial_noise()
    assert torch.equal(gpu, cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sources_draw_where_documented():
    spec = NoiseSpec(seeds=(3,), latent_shape=SHAPE, source=RngSource.GPU)
    gpu = ImageNoise(spec, device="cuda").initial_noise()
    expected = torch.randn(SHAPE, generator=torch.Generator("cuda").manual_seed(3), device="cuda")
    assert gpu.device.type == "cuda" and torch.equal(gpu[0], expected)
    cpu_spec = NoiseSpec(seeds=(3,), latent_shape=SHAPE, source=RngSource.CPU)
    cpu = ImageNoise(cpu_spec, device="cuda").initial_noise()
    assert cpu.device.type == "cuda" and torch.equal(cpu[0].cpu(), reference_draws(3, SHAPE)[0])


# -- initial noise -------------------------------------------------------------------


def test_cpu_initial_noise_is_each_seeds_first_randn():
    result = make_noise((10, 11, 4000000000)).initial_noise()
    assert result.shape == (3, *SHAPE) and result.dtype == torch.float32
    for row, seed in zip(result, (10, 11, 4000000000)):
        assert torch.equal(row, reference_draws(seed, SHAPE)[0])


def test_half_precision_noise_is_the_float32_draw_rounded():
    spec = NoiseSpec(seeds=(9,), latent_shape=SHAPE)
    result = ImageNoise(spec, dtype=torch.float16).initial_noise()
    assert result.dtype == torch.float16
    assert torch.equal(result[0], reference_draws(9, SHAPE)[0].half())


def test_extra_noise_continues_each_images_generator():
    image_noise = make_noise((21, 22))
    image_noise.initial_noise()
    x = torch.zeros((2, *SHAPE))
    draws = [image_noise.randn_like(x) for _ in range(2)]
    for k, seed in enumerate((21, 22)):
        _, first, second = reference_draws(seed, SHAPE, SHAPE, SHAPE)
        assert torch.equal(draws[0][k], first)
        assert torch.equal(draws[1][k], second)


def test_randn_like_follows_the_tensor_shape_dtype_and_device():
    image_noise = make_noise((1, 2))
    image_noise.initial_noise()
    x = torch.zeros((2, 3, 2, 2), dtype=torch.bfloat16)
    result = image_noise.randn_like(x)
    assert result.shape == x.shape and result.dtype == x.dtype and result.device == x.device


def batch_run(seeds: tuple[int, ...], **fields) -> tuple[torch.Tensor, list[torch.Tensor]]:
    image_noise = make_noise(seeds, **fields)
    initial = image_noise.initial_noise()
    x = torch.zeros((len(seeds), *SHAPE))
    return initial, [image_noise.randn_like(x) for _ in range(3)]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"eta_noise_seed_delta": 31337},
        {"subseeds": (500, 501, 502), "subseed_strength": 0.4, "seed_resize_from_h": 24, "seed_resize_from_w": 64},
    ],
    ids=["plain", "ensd", "variation+resize"],
)
def test_image_k_of_a_batch_equals_its_seed_alone(fields):
    batch_initial, batch_extra = batch_run((30, 31, 32), **fields)
    single_fields = dict(fields)
    if "subseeds" in fields:
        single_fields["subseeds"] = (501,)
    alone_initial, alone_extra = batch_run((31,), **single_fields)
    assert torch.equal(batch_initial[1], alone_initial[0])
    for batch_draw, alone_draw in zip(batch_extra, alone_extra):
        assert torch.equal(batch_draw[1], alone_draw[0])


def test_initial_noise_is_drawn_once_and_first():
    image_noise = make_noise((1,))
    with pytest.raises(RuntimeError, match="before initial_noise"):
        image_noise.randn_like(torch.zeros((1, *SHAPE)))
    image_noise.initial_noise()
    with pytest.raises(RuntimeError, match="already drawn"):
        image_noise.initial_noise()


def test_randn_like_refuses_a_batch_of_the_wrong_size():
    image_noise = make_noise((1, 2))
    image_noise.initial_noise()
    with pytest.raises(ValueError, match="batch dimension .* 2 image"):
        image_noise.randn_like(torch.zeros((3, *SHAPE)))


# -- ENSD ----------------------------------------------------------------------------


def test_ensd_changes_extra_noise_but_not_initial_noise():
    plain_initial, plain_extra = batch_run((40, 41))
    ensd_initial, ensd_extra = batch_run((40, 41), eta_noise_seed_delta=31337)
    assert torch.equal(plain_initial, ensd_initial)
    assert not torch.equal(plain_extra[0], ensd_extra[0])


def test_ensd_extra_noise_comes_from_seed_plus_delta():
    _, extra = batch_run((40, 41), eta_noise_seed_delta=31337)
    for k, seed in enumerate((40, 41)):
        expected = reference_draws(seed + 31337, SHAPE, SHAPE, SHAPE)
        for draw, want in zip(extra, expected):
            assert torch.equal(draw[k], want)


def test_ensd_offsets_the_main_seed_not_the_subseed():
    fields = {"subseeds": (900,), "subseed_strength": 0.5, "eta_noise_seed_delta": 5}
    _, extra = batch_run((60,), **fields)
    assert torch.equal(extra[0][0], reference_draws(65, SHAPE)[0])


def test_negative_ensd_wraps_like_torch_manual_seed():
    _, extra = batch_run((3,), eta_noise_seed_delta=-10)
    # torch.Generator.manual_seed(-7) is defined and wraps modulo 2**64.
    assert torch.equal(extra[0][0], reference_draws(-7, SHAPE)[0])


# -- variation seed (slerp) -------------------------------------------------------------


def test_variation_strength_zero_is_no_variation():
    plain = make_noise((70,)).initial_noise()
    zero = make_noise((70,), subseeds=(71,), subseed_strength=0.0).initial_noise()
    assert torch.equal(plain, zero)


def test_variation_strength_one_is_the_subseeds_noise():
    full = make_noise((70,), subseeds=(71,), subseed_strength=1.0).initial_noise()
    torch.testing.assert_close(full[0], reference_draws(71, SHAPE)[0], rtol=1e-5, atol=1e-5)


def plane_coefficients(point: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """(a, b) with point = a*low + b*high for every dim-1 slice; asserts the fit is exact."""
    columns = []
    for c in range(point.shape[0]):
        for w in range(point.shape[2]):
            basis = torch.stack([low[c, :, w], high[c, :, w]], dim=1)
            solution = torch.linalg.lstsq(basis, point[c, :, w]).solution
            torch.testing.assert_close(basis @ solution, point[c, :, w], rtol=1e-4, atol=1e-4)
            columns.append(solution)
    return torch.stack(columns)


def test_variation_half_weights_both_noises_as_slerp_defines():
    main, sub = reference_draws(80, SHAPE)[0], reference_draws(81, SHAPE)[0]
    half = make_noise((80,), subseeds=(81,), subseed_strength=0.5).initial_noise()[0]
    # Shoemake: slerp(t) = sin((1-t)w)/sin(w) p0 + sin(tw)/sin(w) p1, so at t=0.5
    # both weights are sin(w/2)/sin(w) = 1 / (2 cos(w/2)), w the slice's angle.
    expected_weight = 1.0 / (2.0 * torch.cos(angle(main, sub) / 2)).flatten()
    coefficients = plane_coefficients(half, main, sub)
    torch.testing.assert_close(coefficients[:, 0], expected_weight, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(coefficients[:, 1], expected_weight, rtol=1e-4, atol=1e-4)
    # A slerp of two Gaussian draws keeps the norm close to theirs, where a
    # lerp would shrink it by about cos(w / 2) ~ 0.7.
    ratio = half.norm() / ((main.norm() + sub.norm()) / 2)
    assert 0.9 < ratio.item() < 1.1


def test_slerp_of_unit_vectors_stays_on_the_great_circle():
    low, high = reference_draws(5, (3, 8, 4), (3, 8, 4))
    low, high = low / low.norm(dim=1, keepdim=True), high / high.norm(dim=1, keepdim=True)
    total = angle(low, high)
    for t in (0.25, 0.5, 0.9):
        point = slerp(t, low, high)
        torch.testing.assert_close(point.norm(dim=1), torch.ones_like(total), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(angle(point, low), t * total, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(angle(point, high), (1 - t) * total, rtol=1e-3, atol=1e-3)


def test_slerp_endpoints():
    low, high = reference_draws(5, (3, 8, 4), (3, 8, 4))
    torch.testing.assert_close(slerp(0.0, low, high), low)
    torch.testing.assert_close(slerp(1.0, low, high), high)


def test_slerp_of_parallel_vectors_falls_back_to_lerp_without_nan():
    low = reference_draws(6, (2, 5, 3))[0]
    high = low * 2.0
    result = slerp(0.25, low, high)
    assert not torch.isnan(result).any()
    torch.testing.assert_close(result, low * 0.75 + high * 0.25)
    assert torch.equal(slerp(0.5, low, low), low)


# -- resize seed from -------------------------------------------------------------------


def test_resize_from_smaller_pastes_the_from_size_noise_in_the_centre():
    # Target latent 6x5; from 16x24 px -> 2x3 latent. Offsets (6-2)//2 = 2, (5-3)//2 = 1.
    result = make_noise((90,), seed_resize_from_h=16, seed_resize_from_w=24).initial_noise()[0]
    composition = reference_draws(90, (4, 2, 3))[0]
    canvas = reference_draws(90, SHAPE)[0]
    assert torch.equal(result[:, 2:4, 1:4], composition)
    outside = torch.ones(SHAPE, dtype=torch.bool)
    outside[:, 2:4, 1:4] = False
    assert torch.equal(result[outside], canvas[outside])


def test_resize_from_larger_crops_the_centre_of_the_from_size_noise():
    # Target 6x5; from 80x56 px -> 10x7 latent. Offsets (6-10)//2 = -2, (5-7)//2 = -1:
    # rows 2..7 and columns 1..5 of the larger noise fill the whole target.
    result = make_noise((91,), seed_resize_from_h=80, seed_resize_from_w=56).initial_noise()[0]
    composition = reference_draws(91, (4, 10, 7))[0]
    assert torch.equal(result, composition[:, 2:8, 1:6])


def test_resize_from_odd_excess_keeps_the_canvas_in_the_last_column():
    # Width 5 from 8: offset (5-8)//2 = -2, span 8-4 = 4 columns taken from 2..5;
    # height 6 from 6 (48 px) is pasted whole.
    result = make_noise((92,), seed_resize_from_h=48, seed_resize_from_w=64).initial_noise()[0]
    composition = reference_draws(92, (4, 6, 8))[0]
    canvas = reference_draws(92, SHAPE)[0]
    assert torch.equal(result[:, :, 0:4], composition[:, :, 2:6])
    assert torch.equal(result[:, :, 4], canvas[:, :, 4])


def test_resize_from_the_same_size_or_off_is_plain_noise():
    plain = make_noise((93,)).initial_noise()
    same = make_noise((93,), seed_resize_from_h=48, seed_resize_from_w=40).initial_noise()
    half_off = make_noise((93,), seed_resize_from_h=-1, seed_resize_from_w=64).initial_noise()
    assert torch.equal(plain, same) and torch.equal(plain, half_off)


def test_resize_from_with_full_variation_pastes_the_subseeds_composition():
    fields = {"subseeds": (95,), "subseed_strength": 1.0, "seed_resize_from_h": 16, "seed_resize_from_w": 24}
    result = make_noise((94,), **fields).initial_noise()[0]
    composition = reference_draws(95, (4, 2, 3))[0]
    torch.testing.assert_close(result[:, 2:4, 1:4], composition, rtol=1e-5, atol=1e-5)


def test_resize_then_extra_noise_continues_after_the_canvas_draw():
    image_noise = make_noise((96,), seed_resize_from_h=16, seed_resize_from_w=24)
    image_noise.initial_noise()
    extra = image_noise.randn_like(torch.zeros((1, *SHAPE)))
    assert torch.equal(extra[0], reference_draws(96, SHAPE, SHAPE)[1])


def test_paste_centered_leaves_the_canvas_untouched():
    canvas = torch.zeros((1, 4, 4))
    result = paste_centered(canvas, torch.ones((1, 2, 2)))
    assert canvas.sum() == 0 and result.sum() == 4 and result[0, 1:3, 1:3].eq(1).all()


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"seeds": ()}, ValueError, "seeds"),
        ({"seeds": [1, 2]}, ValueError, "seeds"),
        ({"seeds": (-1,)}, ValueError, "seeds: -1 .*resolve_seed"),
        ({"seeds": (2**64,)}, ValueError, "seeds"),
        ({"latent_shape": (4, 0, 8)}, ValueError, "latent_shape"),
        ({"latent_shape": (4, 8)}, ValueError, "latent_shape"),
        ({"subseed_strength": 0.5}, ValueError, "subseeds"),
        ({"subseed_strength": 0.5, "subseeds": (1, 2)}, ValueError, "subseeds: 2 given for 1"),
        ({"subseed_strength": -0.1, "subseeds": (1,)}, ValueError, "subseed_strength"),
        ({"seed_resize_from_h": 4, "seed_resize_from_w": 64}, ValueError, "seed_resize_from"),
        ({"eta_noise_seed_delta": 1.5}, TypeError, "eta_noise_seed_delta"),
        ({"latent_downscale": 0}, ValueError, "latent_downscale"),
        ({"source": "CPU"}, TypeError, "source"),
    ],
)
def test_bad_noise_spec_is_refused_naming_the_field(fields, error, field):
    values = {"seeds": (1,), "latent_shape": SHAPE, **fields}
    with pytest.raises(error, match=field):
        NoiseSpec(**values)


# -- no global RNG -------------------------------------------------------------------------


def forbid(name: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} touches the global RNG")

    return refuse


def forbid_without_generator(name: str, original):
    def guarded(*args, **kwargs):
        if kwargs.get("generator") is None:
            raise AssertionError(f"{name} called without generator=")
        return original(*args, **kwargs)

    return guarded


def patch_global_rngs(monkeypatch) -> None:
    for name in ("manual_seed", "seed", "rand", "randint", "normal", "randn_like", "rand_like", "randperm"):
        monkeypatch.setattr(torch, name, forbid(f"torch.{name}"))
    monkeypatch.setattr(torch, "randn", forbid_without_generator("torch.randn", torch.randn))
    for name in ("random", "randint", "randrange", "seed", "getrandbits", "choice", "uniform", "gauss"):
        monkeypatch.setattr(random, name, forbid(f"random.{name}"))
    for name in dir(numpy.random):
        if not name.startswith("_") and name[0].islower() and callable(getattr(numpy.random, name)):
            monkeypatch.setattr(numpy.random, name, forbid(f"numpy.random.{name}"))


def exercise_module() -> None:
    seed = resolve_seed(-1)
    subseed = resolve_seed(-1)
    seeds, subseeds = image_seeds(seed, subseed, 0.5, 2)
    spec = NoiseSpec(
        seeds=seeds,
        latent_shape=SHAPE,
        subseeds=subseeds,
        subseed_strength=0.5,
        seed_resize_from_h=32,
        seed_resize_from_w=16,
        eta_noise_seed_delta=31337,
        source=RngSource.GPU,
    )
    image_noise = ImageNoise(spec)
    latent = image_noise.initial_noise()
    image_noise.randn_like(latent)
    image_noise.randn_like(latent)


def test_module_never_uses_a_global_rng(monkeypatch):
    torch_state = torch.get_rng_state().clone()
    random_state = random.getstate()
    numpy_state = numpy.random.get_state()
    patch_global_rngs(monkeypatch)
    exercise_module()
    monkeypatch.undo()
    # Global states unchanged also catches draws made from C++ or other paths.
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == random_state
    after = numpy.random.get_state()
    assert after[0] == numpy_state[0] and numpy.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]


def test_guard_catches_a_global_draw(monkeypatch):
    # The guard itself must be able to fail.
    patch_global_rngs(monkeypatch)
    with pytest.raises(AssertionError, match="without generator"):
        torch.randn(2)
    with pytest.raises(AssertionError, match="numpy.random.rand"):
        numpy.random.rand()
    assert noise_module.torch is torch  # the module looks torch.randn up at call time
