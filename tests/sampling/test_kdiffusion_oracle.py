"""Every A1111 sampler that runs k-diffusion's code, against that code: same seed, same result.

The oracle is k-diffusion's ``sampling.py`` (k-diffusion 0.1.1.post1, the file A1111 v1.10
samples with), imported alone: its package ``__init__`` pulls in training code, and the file
itself needs only ``utils.append_dims`` from its package. The ladders come from k-diffusion
too (``external.DiscreteSchedule`` for A1111's Automatic ladder, ``get_sigmas_karras`` and
``get_sigmas_exponential``), over the sigmas of SD's scaled-linear training schedule.

A1111's side is written here from its v1.10 behaviour, not from our code:
- image seeds are seed + i; each image's CPU generator (``torch.Generator().manual_seed``)
  gives its starting noise, scaled by the ladder's first sigma, and then every further draw
  (A1111 routes k-diffusion's ``torch.randn_like`` to those generators; eta noise seed delta 0);
- the DPM++ SDE family gets ``BrownianTreeNoiseSampler(x, smallest non-zero sigma,
  largest sigma, seed=[the image seeds])``;
- ancestral, SDE and DPM fast/adaptive samplers run with eta 1 (A1111's "Eta for ancestral
  samplers" default), Euler/Heun/DPM2 with k-diffusion's churn defaults;
- samplers flagged to discard the next-to-last sigma get a ladder of steps + 1 with it removed;
- DPM fast and adaptive get the model's sigma range (A1111's txt2img passes
  ``model_wrap.sigmas[0]`` and ``[-1]``, whatever the ladder), and DPM fast ``n = steps``;
  the ladder is only used to scale the starting noise (ours: ``txt2img_solve_range``).

Ours is the whole txt2img path minus the nets: ``sigma_ladder``, ``starting_point`` (the
noise sources) and the catalog's sampler, on the analytic denoiser of ``analytic.py``.

Restart and LCM are A1111's own loops around k-diffusion's helpers (``sd_samplers_extra``,
``sd_samplers_lcm``); their oracles below are written from that v1.10 code's behaviour, over
k-diffusion's ``get_sigmas_karras``/``to_d``/``DiscreteSchedule``. DDIM, PLMS and UniPC are not
k-diffusion's: A1111 runs them in timestep space with its own loops, and test_timestep_oracle.py
compares them with those.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from modules.pipeline.sampling_run import SamplingChoice, sigma_ladder, starting_point, txt2img_solve_range
from modules.sampling.catalog import resolve_sampler
from modules.sampling.noise import NoiseSpec, image_seeds
from tests.sampling.analytic import GaussianData

SHAPE = (4, 8, 8)
STEPS = 10
SEED = 1234
RELATIVE_TOLERANCE = 1e-4
# torchsde warns when k-diffusion's tree is queried at its lower end as rounded to 6 decimals
# (A1111 prints the same warnings); the value it returns there is the clamped end point.
pytestmark = pytest.mark.filterwarnings("ignore:Should have ta>=t0:UserWarning")

_KARRAS, _EXPONENTIAL, _UNIFORM = "karras", "exponential", "uniform"
_ETA = {"eta": 1.0}


# A1111 v1.10's k-diffusion samplers: name -> (k-diffusion function, default schedule, options).
A1111_KDIFFUSION = {
    "DPM++ 2M": ("sample_dpmpp_2m", _KARRAS, {}),
    "DPM++ SDE": ("sample_dpmpp_sde", _KARRAS, {"brownian": True, "kwargs": _ETA}),
    "DPM++ 2M SDE": ("sample_dpmpp_2m_sde", _EXPONENTIAL, {"brownian": True, "kwargs": _ETA}),
    "DPM++ 2M SDE Heun": ("sample_dpmpp_2m_sde", _EXPONENTIAL,
                          {"brownian": True, "kwargs": {**_ETA, "solver_type": "heun"}}),
    "DPM++ 2S a": ("sample_dpmpp_2s_ancestral", _KARRAS, {"kwargs": _ETA}),
    "DPM++ 3M SDE": ("sample_dpmpp_3m_sde", _EXPONENTIAL, {"brownian": True, "discard": True, "kwargs": _ETA}),
    "Euler a": ("sample_euler_ancestral", _UNIFORM, {"kwargs": _ETA}),
    "Euler": ("sample_euler", _UNIFORM, {}),
    "LMS": ("sample_lms", _UNIFORM, {}),
    "Heun": ("sample_heun", _UNIFORM, {}),
    "DPM2": ("sample_dpm_2", _KARRAS, {"discard": True}),
    "DPM2 a": ("sample_dpm_2_ancestral", _KARRAS, {"discard": True, "kwargs": _ETA}),
    "DPM fast": ("sample_dpm_fast", _UNIFORM, {"range": True, "n": True, "kwargs": _ETA}),
    "DPM adaptive": ("sample_dpm_adaptive", _UNIFORM, {"range": True, "kwargs": _ETA}),
}
_TAKES_NOISE_SAMPLER = {"sample_euler_ancestral", "sample_dpm_2_ancestral", "sample_dpmpp_2s_ancestral",
                        "sample_dpmpp_sde", "sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde",
                        "sample_dpm_fast", "sample_dpm_adaptive"}


def _load_kdiffusion() -> SimpleNamespace:
    """k-diffusion's sampling.py and external.py, as modules of a stand-in package whose
    ``utils`` holds the one helper they use."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or spec.origin is None:
        pytest.fail("k-diffusion==0.1.1.post1 is a test requirement (requirements-test.txt); it is not installed")
    folder = Path(spec.origin).parent
    package = types.ModuleType("_kdiffusion_oracle")
    package.__path__ = []
    utils = types.ModuleType("_kdiffusion_oracle.utils")
    utils.append_dims = lambda x, ndim: x[(...,) + (None,) * (ndim - x.ndim)]
    loaded = {}
    saved = {name: sys.modules.get(name) for name in ("_kdiffusion_oracle", "_kdiffusion_oracle.utils",
                                                      "_kdiffusion_oracle.sampling", "_kdiffusion_oracle.external")}
    sys.modules.update({"_kdiffusion_oracle": package, "_kdiffusion_oracle.utils": utils})
    package.utils = utils
    try:
        for name in ("sampling", "external"):
            module_spec = importlib.util.spec_from_file_location(f"_kdiffusion_oracle.{name}", folder / f"{name}.py")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
            setattr(package, name, module)
            loaded[name] = module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return SimpleNamespace(**loaded)


@pytest.fixture(scope="module")
def kd() -> SimpleNamespace:
    return _load_kdiffusion()


def _sd_sigmas() -> torch.Tensor:
    """SD's training sigmas as LDM holds them: scaled-linear betas in float64, the cumulative
    product kept as a float32 buffer, sigma = sqrt((1 - a) / a) in float32."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).float()
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def a1111_ladder(kd: SimpleNamespace, schedule: str, steps: int, discard: bool) -> torch.Tensor:
    table = kd.external.DiscreteSchedule(_sd_sigmas(), quantize=False)
    n = steps + 1 if discard else steps
    sigma_min, sigma_max = table.sigmas[0].item(), table.sigmas[-1].item()
    if schedule == _UNIFORM:
        ladder = table.get_sigmas(n)
    elif schedule == "sgm uniform":  # A1111's sd_schedulers.sgm_uniform
        start, end = table.sigma_to_t(torch.tensor(sigma_max)), table.sigma_to_t(torch.tensor(sigma_min))
        ladder = torch.tensor([table.t_to_sigma(t).item() for t in torch.linspace(start, end, n + 1)[:-1]] + [0.0])
    elif schedule == _KARRAS:
        ladder = kd.sampling.get_sigmas_karras(n=n, sigma_min=sigma_min, sigma_max=sigma_max, rho=7.0)
    else:
        ladder = kd.sampling.get_sigmas_exponential(n=n, sigma_min=sigma_min, sigma_max=sigma_max)
    return torch.cat([ladder[:-2], ladder[-1:]]) if discard else ladder


def a1111_sample(kd: SimpleNamespace, name: str, schedule: str | None, seeds: list[int]) -> torch.Tensor:
    function_name, default_schedule, options = A1111_KDIFFUSION[name]
    sigmas = a1111_ladder(kd, (schedule or default_schedule).lower(), STEPS, options.get("discard", False))
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    draw = lambda: torch.stack([torch.randn(SHAPE, generator=g) for g in generators])  # noqa: E731
    x = draw() * sigmas[0]
    kwargs = dict(options.get("kwargs", {}))
    if options.get("brownian"):
        kwargs["noise_sampler"] = kd.sampling.BrownianTreeNoiseSampler(
            x, sigmas[sigmas > 0].min(), sigmas.max(), seed=list(seeds))
    elif function_name in _TAKES_NOISE_SAMPLER:
        kwargs["noise_sampler"] = lambda sigma, sigma_next: draw()
    data = GaussianData(SHAPE)
    function = getattr(kd.sampling, function_name)
    if options.get("range"):
        table = _sd_sigmas()
        bounds = (table[0].item(), table[-1].item())
        if options.get("n"):
            kwargs["n"] = STEPS
        return function(data.denoise, x, *bounds, disable=True, **kwargs)
    return function(data.denoise, x, sigmas, disable=True, **kwargs)


def our_sample(
    name: str, schedule: str | None, seed: int, batch: int, brownian_per_image: bool = True
) -> torch.Tensor:
    choice = SamplingChoice(sampler_name=name, scheduler=schedule or "Automatic", steps=STEPS)
    sampler, _ = resolve_sampler(name)
    sigmas = sigma_ladder(SimpleNamespace(alphas_cumprod=None), choice)  # a model without its own schedule
    seeds, _ = image_seeds(seed, seed, 0.0, batch)
    spec = NoiseSpec(seeds, SHAPE, brownian_per_image=brownian_per_image)
    x, step_noise = starting_point(sampler, spec, sigmas, sigmas, "cpu", torch.float32)
    solve_range = txt2img_solve_range(sampler, SimpleNamespace(alphas_cumprod=None))
    return sampler(GaussianData(SHAPE).denoise, x, sigmas, noise=step_noise, **solve_range)


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).norm() / theirs.double().norm())


PER_IMAGE_STEPPING = {"DPM adaptive"}  # batch > 1: A1111 sizes steps on one error for the batch


@pytest.mark.parametrize("schedule", [None, "Karras"], ids=["Automatic", "Karras"])
@pytest.mark.parametrize("name", list(A1111_KDIFFUSION))
@pytest.mark.parametrize("batch", [1, 2])
def test_same_seed_same_result_as_a1111(kd, name, schedule, batch):
    ours = our_sample(name, schedule, SEED, batch)
    seeds = [SEED + i for i in range(batch)]
    if name in PER_IMAGE_STEPPING and batch > 1:
        # ours steps each image on its own error, so image k equals A1111's run of its seed alone
        theirs = torch.cat([a1111_sample(kd, name, schedule, [seed]) for seed in seeds])
    else:
        theirs = a1111_sample(kd, name, schedule, seeds)
    assert ours.shape == theirs.shape == (batch, *SHAPE)
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


def a1111_sample_batch_tree(kd: SimpleNamespace, name: str, seeds: list[int]) -> torch.Tensor:
    """A1111 with "Do not make DPM++ SDE deterministic across different batch sizes": no noise
    sampler is passed, so k-diffusion builds one tree seeded from torch's global RNG, which
    A1111's ImageRNG left seeded with the last image seed (``torch.manual_seed`` per image)."""
    function_name, default_schedule, options = A1111_KDIFFUSION[name]
    sigmas = a1111_ladder(kd, default_schedule, STEPS, options.get("discard", False))
    x = _generators_draw(seeds)() * sigmas[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds[-1])
        return getattr(kd.sampling, function_name)(GaussianData(SHAPE).denoise, x, sigmas, disable=True,
                                                   **options.get("kwargs", {}))


@pytest.mark.parametrize("name", ["DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"])
@pytest.mark.parametrize("batch", [1, 2])
def test_sde_samplers_with_one_tree_per_batch_match_a1111(kd, name, batch):
    ours = our_sample(name, None, SEED, batch, brownian_per_image=False)
    theirs = a1111_sample_batch_tree(kd, name, [SEED + i for i in range(batch)])
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE
    if batch == 2:  # and the setting does what it says: the first image now depends on its batch
        assert _relative(ours[:1], our_sample(name, None, SEED, 1, brownian_per_image=False)) > 0.01


@pytest.mark.parametrize("name", ["DPM fast", "DPM adaptive"])
def test_dpm_fast_and_adaptive_solve_over_the_models_range_whatever_the_ladder(kd, name):
    """SGM Uniform's last level is far above the model's smallest sigma; A1111's txt2img
    still solves down to that smallest sigma."""
    ours = our_sample(name, "SGM Uniform", SEED, 1)
    theirs = a1111_sample(kd, name, "SGM Uniform", [SEED])
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


def test_every_sampler_of_the_catalog_is_compared_or_listed_as_different():
    from modules.sampling.catalog import sampler_names
    own_loops = {"Restart", "LCM"}
    timestep_loops = {"DDIM", "PLMS", "UniPC"}  # test_timestep_oracle.py
    assert set(sampler_names()) == set(A1111_KDIFFUSION) | own_loops | timestep_loops


# ----- A1111's own loops: Restart and LCM -----

def _generators_draw(seeds: list[int]):
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return lambda: torch.stack([torch.randn(SHAPE, generator=g) for g in generators])


def a1111_restart(kd: SimpleNamespace, steps: int, seeds: list[int]) -> torch.Tensor:
    """A1111's restart_sampler with its automatic restart plan, Karras ladder, s_noise 1."""
    sigmas = a1111_ladder(kd, _KARRAS, steps, discard=False)
    draw = _generators_draw(seeds)
    x = draw() * sigmas[0]
    data = GaussianData(SHAPE)
    ones = x.new_ones([x.shape[0]])

    def heun(x, old, new):
        d = kd.sampling.to_d(x, old, data.denoise(x, old * ones))
        if new == 0:
            return x + d * (new - old)
        x_euler = x + d * (new - old)
        d_end = kd.sampling.to_d(x_euler, new, data.denoise(x_euler, new * ones))
        return x + (d + d_end) / 2 * (new - old)

    plan = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        main_steps = steps - restart_steps * restart_times
        sigmas = kd.sampling.get_sigmas_karras(main_steps, sigmas[-2].item(), sigmas[0].item())
        plan = {int(torch.argmin((sigmas - 0.1).abs())): (restart_steps + 1, restart_times, 2.0)}
    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in plan:
            count, times, top = plan[i + 1]
            top_index = int(torch.argmin((sigmas - top).abs()))
            if top_index < i + 1:
                back_up = kd.sampling.get_sigmas_karras(count, sigmas[i + 1].item(), sigmas[top_index].item())[:-1]
                pairs.extend(list(zip(back_up[:-1], back_up[1:])) * times)
    last = None
    for old, new in pairs:
        if last is not None and last < old:
            x = x + draw() * (old**2 - last**2) ** 0.5
        x = heun(x, old, new)
        last = new
    return x


def a1111_lcm(kd: SimpleNamespace, schedule: str | None, seeds: list[int]) -> torch.Tensor:
    """A1111's sample_lcm over its LCMCompVisDenoiser ladder: the 50 sigmas at t = 19, 39, ...,
    999; Automatic walks t from 999 to 19 mapped onto that table, Karras spans its range."""
    stride, table_size = 20, 50
    table = kd.external.DiscreteSchedule(_sd_sigmas()[[999 - stride * k for k in reversed(range(table_size))]],
                                         quantize=False)
    if schedule is None:
        t = torch.linspace(999, stride - 1, STEPS)
        index = ((t - (stride - 1)) / stride).float().clamp(0, table_size - 1)
        sigmas = kd.sampling.append_zero(table.t_to_sigma(index))
    else:
        sigmas = kd.sampling.get_sigmas_karras(STEPS, table.sigmas[0].item(), table.sigmas[-1].item(), rho=7.0)
    draw = _generators_draw(seeds)
    x = draw() * sigmas[0]
    data = GaussianData(SHAPE)
    for i in range(len(sigmas) - 1):
        x = data.denoise(x, sigmas[i] * x.new_ones([x.shape[0]]))
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * draw()
    return x


def our_restart(steps: int, seed: int, batch: int) -> torch.Tensor:
    choice = SamplingChoice(sampler_name="Restart", steps=steps)
    sampler, _ = resolve_sampler("Restart")
    sigmas = sigma_ladder(SimpleNamespace(alphas_cumprod=None), choice)
    seeds, _ = image_seeds(seed, seed, 0.0, batch)
    x, step_noise = starting_point(sampler, NoiseSpec(seeds, SHAPE), sigmas, sigmas, "cpu", torch.float32)
    return sampler(GaussianData(SHAPE).denoise, x, sigmas, noise=step_noise)


@pytest.mark.parametrize("steps", [10, 24, 40], ids=["no-restart", "one-restart", "two-restarts"])
@pytest.mark.parametrize("batch", [1, 2])
def test_restart_same_seed_same_result_as_a1111(kd, steps, batch):
    ours = our_restart(steps, SEED, batch)
    theirs = a1111_restart(kd, steps, [SEED + i for i in range(batch)])
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("schedule", [None, "Karras"], ids=["Automatic", "Karras"])
@pytest.mark.parametrize("batch", [1, 2])
def test_lcm_same_seed_same_result_as_a1111(kd, schedule, batch):
    ours = our_sample("LCM", schedule, SEED, batch)
    theirs = a1111_lcm(kd, schedule, [SEED + i for i in range(batch)])
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


def test_the_oracle_sees_a_different_seed(kd):
    """The comparison can fail: another seed, or generator noise instead of the Brownian
    tree, gives a different result."""
    ours = our_sample("DPM++ 2M SDE", None, SEED, 1)
    assert _relative(ours, a1111_sample(kd, "DPM++ 2M SDE", None, [SEED + 1])) > 0.1
    assert _relative(our_sample("Euler a", None, SEED, 1), a1111_sample(kd, "Euler a", None, [SEED + 7])) > 0.1


def _a1111_lcm_denoiser(kd: SimpleNamespace, net):
    """A1111's LCMCompVisDenoiser: k-diffusion's DiscreteEpsDDPMDenoiser over the 50 LCM
    alphas, asked at the nearest LCM timestep, then the consistency boundary condition."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).float()
    stride, size = 20, 50
    lcm_alphas = alphas_cumprod[[999 - stride * k for k in reversed(range(size))]]

    class LCMCompVisDenoiser(kd.external.DiscreteEpsDDPMDenoiser):
        def sigma_to_t(self, sigma, quantize=None):
            nearest = (sigma.log() - self.log_sigmas[:, None]).abs().argmin(dim=0).view(sigma.shape)
            return nearest * stride + (stride - 1)

        def get_eps(self, *args, **kwargs):
            return self.inner_model.apply_model(*args, **kwargs)

        def forward(self, x, sigma, **kwargs):
            c_out, c_in = [kd.sampling.utils.append_dims(c, x.ndim) for c in self.get_scalings(sigma)]
            x0 = x + self.get_eps(x * c_in, self.sigma_to_t(sigma), **kwargs) * c_out
            scaled = kd.sampling.utils.append_dims(self.sigma_to_t(sigma), x.ndim) * 10.0
            skip = 0.5**2 / (scaled**2 + 0.5**2)
            out = scaled / (scaled**2 + 0.5**2) ** 0.5
            return out * x0 + skip * x

    return LCMCompVisDenoiser(SimpleNamespace(apply_model=net), lcm_alphas, quantize=None)


def test_lcm_denoiser_matches_a1111s(kd):
    from modules.sampling.denoiser import LCMDenoiser

    def net(x, t):  # a timestep-dependent stand-in for the UNet's noise prediction
        return torch.tanh(x) * (1 + t.float()[:, None, None, None] / 100)

    ours = LCMDenoiser(net, _sd_sigmas())
    theirs = _a1111_lcm_denoiser(kd, net)
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3)) * 3
    for level in (14.6146, 7.0, 2.5, 1.0, 0.5, 0.2, 0.1345, 0.05):
        sigma = torch.full((2,), level)
        assert _relative(ours(x, sigma), theirs(x, sigma)) <= RELATIVE_TOLERANCE, level
