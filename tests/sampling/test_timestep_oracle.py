"""DDIM, PLMS and UniPC against A1111's timestep loops: same seed, same result.

A1111 v1.10 runs these three in the variance-preserving latent at training timesteps
(``modules/sd_samplers_timesteps.py``, ``sd_samplers_timesteps_impl.py``, its UniPC port in
``modules/models/diffusion/uni_pc``). Its side is written here from those files' behaviour, in
timestep space and float64, independently of our code:

- timesteps = clip(arange(0, 1000, 1000 // steps) + 1, 0, 999);
- DDIM: alphas = abar[timesteps], alphas_prev = abar[pad(timesteps[:-1], (1, 0))], eta's
  sigma_t = eta sqrt((1 - a_prev) / (1 - a) (1 - a / a_prev)); len(timesteps) - 1 steps from the
  last timestep down, each x = sqrt(a_prev) pred_x0 + sqrt(1 - a_prev - sigma_t^2) e_t + sigma_t z,
  z a fresh ``randn_like`` (A1111 routes it to each image's generator) drawn every step;
- PLMS: the same walk, pseudo improved Euler on the first step, then Adams-Bashforth of the
  stored eps (3/2, -1/2; 23/12, -16/12, 5/12; 55/24, -59/24, 37/24, -9/24);
- UniPC: NoiseScheduleVP('discrete'): log alpha = 0.5 log abar at t = (n + 1) / 1000,
  interpolated linearly in t (and its inverse, from lambda, linearly in log alpha); from t = 1
  (img2img: timesteps[-1] / 1000 + 1 / 1000) to 1 / 1000 in len(timesteps) steps spaced by the
  "UniPC skip type" setting (evenly in t, in sqrt(t), or in lambda = log alpha - log sigma);
  multistep predictor-corrector of the "UniPC order" setting (3) with lower-order warm-up and,
  with "UniPC lower order final", final steps; the "UniPC variant": bh1/bh2 solve the order
  conditions (rho = 1/2 for the order-2 predictor and order-1 corrector), vary_coeff applies the
  inverse of C[i][k] = r_i^k / (k+1)! row by row, its corrector weighting the newest difference
  with the entry of the row its loop stopped at; an order above the steps is an error there;
  the model asked at (t - 1 / 1000) * 1000;
- txt2img starts from each image's first draw as is; img2img keeps t_enc =
  int(min(strength, 0.999) * steps) timesteps, noises the init latent with the first draw
  to timesteps[t_enc] (sqrt(a) x0 + sqrt(1 - a) noise) and walks timesteps[:t_enc];
- the result is the variance-preserving latent the loop ends with.

The model is an analytic guided eps predictor (two Gaussian data sets, CFG scale 7), asked at a
timestep: the same function of (latent, timestep) on both sides. Ours is the whole path minus
the nets: ``sigma_ladder`` / ``img2img_start``, ``starting_point`` (the noise sources),
``model_denoiser`` and ``run_sampler``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from modules.job_spec import sampler_knobs
from modules.models.families import Prediction
from modules.options import Options
from modules.pipeline.sampling_run import LatentMask, SamplingChoice, model_denoiser, sigma_ladder, starting_point
from modules.sampling.catalog import Img2ImgSteps, img2img_start, run_sampler, walk_spacing
from modules.sampling.noise import NoiseSpec

SHAPE = (4, 8, 8)
SEED = 4321
RELATIVE_TOLERANCE = 1e-5
T = 1000

# SD's scaled-linear training schedule, computed in float64 and stored in float32 as LDM's
# ``register_schedule`` stores it (``alphas_cumprod`` is a float32 buffer that A1111's loops read);
# high UniPC orders without lower order final amplify the float32 rounding to ~2e-5 otherwise.
ABAR = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, T, dtype=torch.float64) ** 2, 0).float().double()
LOG_SIGMAS = (((1 - ABAR) / ABAR) ** 0.5).log()


class GuidedEps:
    """uncond + 7 (cond - uncond) of the exact eps of two Gaussian data sets, at the noise level
    the table gives a (fractional) timestep, read in log sigma (any smooth function of t would do,
    as long as both sides ask it at the same t), plus a small term in each channel's spatial mean."""

    def __init__(self) -> None:
        count = math.prod(SHAPE)
        self.means = (torch.linspace(-1.0, 1.5, count, dtype=torch.float64).reshape(SHAPE),
                      torch.linspace(0.8, -0.6, count, dtype=torch.float64).reshape(SHAPE))
        self.stds = (0.5, 0.8)
        self.scale = 7.0

    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double().clamp(0, T - 1)
        low = t.floor().long().clamp(max=T - 2)
        sigma = ((1 - (t - low)) * LOG_SIGMAS[low] + (t - low) * LOG_SIGMAS[low + 1]).exp().reshape(-1, 1, 1, 1)
        x = z.double() * (1 + sigma**2) ** 0.5
        uncond, cond = ((x - (m + (x - m) * s**2 / (s**2 + sigma**2))) / sigma for m, s in zip(self.means, self.stds))
        spatial = 0.2 * z.double().mean(dim=(-2, -1), keepdim=True)  # so what one pixel sees reaches the others
        return (uncond + self.scale * (cond - uncond) + spatial).to(z.dtype)


def draws(seeds: list[int]):
    """Each image's generator: the first call is the starting noise, later ones the step noise."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return lambda: torch.stack([torch.randn(SHAPE, generator=g) for g in generators]).double()


def a1111_timesteps(steps: int) -> torch.Tensor:
    return torch.clip(torch.arange(0, T, T // steps) + 1, 0, T - 1)


# ----- A1111's loops -----

def a1111_ddim(net, x, timesteps, draw, eta=0.0):
    alphas = ABAR[timesteps]
    alphas_prev = ABAR[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))]
    sigmas = eta * ((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev)).sqrt()
    ones = torch.ones(x.shape[0])
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = net(x, timesteps[index].item() * ones)
        a_t, a_prev, sigma_t = alphas[index].item(), alphas_prev[index].item(), sigmas[index].item()
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        x = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev - sigma_t**2) * e_t + sigma_t * draw()
    return x


def a1111_plms(net, x, timesteps, draw=None):
    alphas = ABAR[timesteps]
    alphas_prev = ABAR[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))]
    ones = torch.ones(x.shape[0])

    def transfer(x, e_t, index):
        a_t, a_prev = alphas[index].item(), alphas_prev[index].item()
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        return math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev) * e_t

    old_eps: list[torch.Tensor] = []
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = net(x, timesteps[index].item() * ones)
        if not old_eps:
            e_next = net(transfer(x, e_t, index), timesteps[max(index - 1, 0)].item() * ones)
            e_prime = (e_t + e_next) / 2
        elif len(old_eps) == 1:
            e_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x = transfer(x, e_prime, index)
        old_eps = (old_eps + [e_t])[-3:]
    return x


class A1111UniPC:
    """The discrete VP schedule and the multistep bh update of A1111's UniPC port."""

    def __init__(self, net, variant: str = "bh1"):
        self.net, self.variant = net, variant
        self.log_alphas = 0.5 * ABAR.log()  # at t = (n + 1) / T

    def log_alpha(self, t: float) -> float:
        position = t * T - 1  # piecewise linear in t between the grid points
        low = min(max(int(math.floor(position)), 0), T - 2)
        weight = position - low
        return float((1 - weight) * self.log_alphas[low] + weight * self.log_alphas[low + 1])

    def std(self, t: float) -> float:
        return math.sqrt(1 - math.exp(2 * self.log_alpha(t)))

    def lam(self, t: float) -> float:
        return self.log_alpha(t) - math.log(self.std(t))

    def data(self, x: torch.Tensor, t: float) -> torch.Tensor:
        eps = self.net(x, torch.full((x.shape[0],), (t - 1 / T) * T, dtype=torch.float64))
        return (x - self.std(t) * eps) / math.exp(self.log_alpha(t))

    def inverse_lambda(self, lam: float) -> float:
        """t of a lambda: log alpha = -0.5 log(1 + e^(-2 lambda)), then t linear in log alpha
        between the grid points (which fall as t grows)."""
        log_alpha = -0.5 * math.log1p(math.exp(-2 * lam))
        grid = self.log_alphas.tolist()
        n = next((i for i in range(T - 1) if grid[i + 1] <= log_alpha), T - 2)
        weight = (log_alpha - grid[n]) / (grid[n + 1] - grid[n])
        return ((n + 1) + weight) / T

    def time_steps(self, skip_type: str, t_start: float, steps: int) -> list[float]:
        t_end = 1 / T
        if skip_type == "time_uniform":
            return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()
        if skip_type == "time_quadratic":
            return (torch.linspace(t_start**0.5, t_end**0.5, steps + 1, dtype=torch.float64) ** 2).tolist()
        assert skip_type == "logSNR"
        lambdas = torch.linspace(self.lam(t_start), self.lam(t_end), steps + 1, dtype=torch.float64).tolist()
        return [self.inverse_lambda(lam) for lam in lambdas]

    def update(self, x, models, times, t, order, use_corrector):
        if self.variant == "vary_coeff":
            return self.vary_update(x, models, times, t, order, use_corrector)
        return self.bh_update(x, models, times, t, order, use_corrector)

    def differences(self, models, times, t, order):
        """The step's start, its h in lambda, the ratios r_k (1 appended) and the scaled differences D1_k."""
        t0, m0 = times[-1], models[-1]
        h = self.lam(t) - self.lam(t0)
        rks, d1s = [], []
        for i in range(1, order):
            rk = (self.lam(times[-(i + 1)]) - self.lam(t0)) / h
            rks.append(rk)
            d1s.append((models[-(i + 1)] - m0) / rk)
        rks.append(1.0)
        return t0, m0, h, rks, d1s

    def vary_update(self, x, models, times, t, order, use_corrector):
        t0, m0, h, rks, d1s = self.differences(models, times, t, order)
        K = len(rks)
        rk_tensor = torch.tensor(rks, dtype=torch.float64)
        columns, col = [], torch.ones_like(rk_tensor)
        for k in range(1, K + 1):
            columns.append(col)
            col = col * rk_tensor / (k + 1)
        C = torch.stack(columns, dim=1)
        hh = -h
        h_phi_ks, h_phi_k, factorial = [], math.expm1(hh), 1
        for k in range(1, K + 2):
            h_phi_ks.append(h_phi_k)
            h_phi_k = h_phi_k / hh - 1 / factorial
            factorial *= k + 1
        alpha_t = math.exp(self.log_alpha(t))
        x_base = self.std(t) / self.std(t0) * x - alpha_t * h_phi_ks[0] * m0

        def weighted(row):  # sum_j row[j] D1s[j]
            return sum(float(w) * d for w, d in zip(row, d1s))

        x_t = x_base
        if d1s:
            A_p = torch.linalg.inv(C[:-1, :-1])
            for k in range(K - 1):
                x_t = x_t - alpha_t * h_phi_ks[k + 1] * weighted(A_p[k])
        if not use_corrector:
            return x_t, None
        A_c = torch.linalg.inv(C)
        model_t = self.data(x_t, t)
        x_t, k = x_base, 0
        for k in range(K - 1):
            x_t = x_t - alpha_t * h_phi_ks[k + 1] * weighted(A_c[k][:-1])
        return x_t - alpha_t * h_phi_ks[K] * (model_t - m0) * float(A_c[k][-1]), model_t

    def bh_update(self, x, models, times, t, order, use_corrector):
        t0, m0, h, rks, d1s = self.differences(models, times, t, order)
        hh = -h
        h_phi_1 = math.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial = 1
        b_h = hh if self.variant == "bh1" else math.expm1(hh)
        rows, rhs = [], []
        for i in range(1, order + 1):
            rows.append([r ** (i - 1) for r in rks])
            rhs.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        matrix, b = torch.tensor(rows, dtype=torch.float64), torch.tensor(rhs, dtype=torch.float64)
        alpha_t = math.exp(self.log_alpha(t))
        x_base = self.std(t) / self.std(t0) * x - alpha_t * h_phi_1 * m0
        predicted = 0
        if d1s:
            rhos_p = [0.5] if order == 2 else torch.linalg.solve(matrix[:-1, :-1], b[:-1]).tolist()
            predicted = sum(rho * d for rho, d in zip(rhos_p, d1s))
        x_t = x_base - alpha_t * b_h * predicted
        if not use_corrector:
            return x_t, None
        rhos_c = [0.5] if order == 1 else torch.linalg.solve(matrix, b).tolist()
        model_t = self.data(x_t, t)
        corrected = sum(rho * d for rho, d in zip(rhos_c[:-1], d1s)) + rhos_c[-1] * (model_t - m0)
        return x_base - alpha_t * b_h * corrected, model_t

    def sample(self, x, steps, t_start=1.0, order=3, lower_order_final=True, skip_type="time_uniform"):
        assert steps >= order, "UniPC order must be < sampling steps"
        times = self.time_steps(skip_type, t_start, steps)
        models, t_prev = [self.data(x, times[0])], [times[0]]
        for init_order in range(1, order):
            x, model_x = self.update(x, models, t_prev, times[init_order], init_order, True)
            models.append(model_x)
            t_prev.append(times[init_order])
        for step in range(order, steps + 1):
            step_order = min(order, steps + 1 - step) if lower_order_final else order
            x, model_x = self.update(x, models, t_prev, times[step], step_order, step < steps)
            models, t_prev = models[1:] + [model_x], t_prev[1:] + [times[step]]
        return x


def a1111_unipc(net, x, timesteps, draw=None, is_img2img=False, settings=None):
    """``settings``: A1111's UniPC settings (``uni_pc_variant``, ...), its defaults if not given."""
    opts = {**UNIPC_DEFAULTS, **(settings or {})}
    t_start = timesteps[-1].item() / T + 1 / T if is_img2img else 1.0
    return A1111UniPC(net, opts["uni_pc_variant"]).sample(
        x, len(timesteps), t_start, opts["uni_pc_order"], opts["uni_pc_lower_order_final"], opts["uni_pc_skip_type"])


UNIPC_DEFAULTS = {"uni_pc_variant": "bh1", "uni_pc_skip_type": "time_uniform", "uni_pc_order": 3,
                  "uni_pc_lower_order_final": True}


A1111_LOOPS = {"DDIM": a1111_ddim, "PLMS": a1111_plms, "UniPC": a1111_unipc}


def a1111_txt2img(name: str, steps: int, seeds: list[int], **kwargs) -> torch.Tensor:
    draw = draws(seeds)
    return A1111_LOOPS[name](GuidedEps(), draw(), a1111_timesteps(steps), draw, **kwargs)


def a1111_img2img(name: str, steps: int, strength: float, init: torch.Tensor, seeds: list[int], keep=None,
                  hires=False, **kwargs):
    """``keep``: inpainting's latent mask (1 = keep), blended into the model's input before every
    call (``CFGDenoiserTimesteps.mask_before_denoising``) and into the result (processing).
    ``hires``: steps given, as the hires pass gives them (``setup_img2img_steps``): the timesteps
    of int(steps / min(strength, 0.999)) steps, t_enc = steps - 1."""
    draw = draws(seeds)
    t_enc = steps - 1 if hires else int(min(strength, 0.999) * steps)
    timesteps = a1111_timesteps(int(steps / min(strength, 0.999)) if hires else steps)
    a = ABAR[timesteps[t_enc]].item()
    x = init.double() * math.sqrt(a) + draw() * math.sqrt(1 - a)
    if name == "UniPC":
        kwargs["is_img2img"] = True
    net = GuidedEps()
    if keep is not None:
        net = lambda z, t, inner=net: inner(z * (1 - keep) + init.double() * keep, t)  # noqa: E731
    samples = A1111_LOOPS[name](net, x, timesteps[:t_enc], draw, **kwargs)
    return samples if keep is None else samples * (1 - keep) + init.double() * keep


# ----- ours -----

NO_SCHEDULE = SimpleNamespace(alphas_cumprod=None)  # a model without its own: SD's scaled-linear one


def _model_sigmas() -> torch.Tensor:
    from modules.pipeline.sampling_run import model_sigmas_of
    return model_sigmas_of(NO_SCHEDULE)


def our_txt2img(name: str, steps: int, seeds: list[int], **knobs) -> torch.Tensor:
    choice = SamplingChoice(sampler_name=name, steps=steps, knobs=knobs)
    sampler = choice.sampler
    sigmas = sigma_ladder(NO_SCHEDULE, choice)
    x, noise = starting_point(sampler, NoiseSpec(tuple(seeds), SHAPE), sigmas, sigmas, "cpu", torch.float32)
    denoiser = model_denoiser(sampler, GuidedEps(), _model_sigmas(), Prediction.EPS)
    return run_sampler(sampler, denoiser, x, sigmas, noise=noise, **knobs)


def our_img2img(name: str, steps: int, strength: float, init: torch.Tensor, seeds: list[int], keep=None,
                hires=False, dtype=torch.float32, **knobs):
    choice = SamplingChoice(sampler_name=name, steps=steps, knobs=knobs)
    sampler = choice.sampler
    cut = Img2ImgSteps.of(steps, strength, fixed=hires)
    full = sigma_ladder(NO_SCHEDULE, choice, cut.ladder_steps)
    walk = img2img_start(sampler, choice.schedule, full, cut, _model_sigmas(), skip_type=walk_spacing(choice.knobs))
    x, noise = starting_point(sampler, NoiseSpec(tuple(seeds), SHAPE), walk.sigmas, full, "cpu", dtype,
                              init, 1.0, walk)
    denoiser = model_denoiser(sampler, GuidedEps(), _model_sigmas(), Prediction.EPS)
    if keep is None:
        return run_sampler(sampler, denoiser, x, walk.sigmas, noise=noise, **knobs)
    mask = LatentMask(init, keep)
    return mask.blend(run_sampler(sampler, mask.around(sampler, denoiser), x, walk.sigmas, noise=noise, **knobs))


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).norm() / theirs.double().norm())


def _init(batch: int) -> torch.Tensor:
    return torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(99))


CASES = [("DDIM", {}), ("DDIM", {"eta": 0.6}), ("PLMS", {}), ("UniPC", {})]
IDS = ["DDIM", "DDIM-eta0.6", "PLMS", "UniPC"]


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("steps", [20, 30, 9], ids=["20-steps", "30-steps-31-timesteps", "9-steps-last-clipped-to-999"])
@pytest.mark.parametrize("name, knobs", CASES, ids=IDS)
def test_txt2img_same_seed_same_result_as_a1111(name, knobs, steps, batch):
    seeds = [SEED + i for i in range(batch)]
    ours = our_txt2img(name, steps, seeds, **knobs)
    theirs = a1111_txt2img(name, steps, seeds, **knobs)
    assert ours.shape == theirs.shape == (batch, *SHAPE)
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("strength", [0.75, 0.5, 0.1])
@pytest.mark.parametrize("name, knobs", CASES, ids=IDS)
def test_img2img_same_seed_same_result_as_a1111(name, knobs, strength, batch):
    steps = 30 if name == "UniPC" and strength == 0.1 else 20  # A1111's UniPC needs t_enc >= its order 3
    seeds = [SEED + i for i in range(batch)]
    init = _init(batch)
    ours = our_img2img(name, steps, strength, init, seeds, **knobs)
    theirs = a1111_img2img(name, steps, strength, init, seeds, **knobs)
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


@pytest.mark.parametrize("strength", [0.7, 0.35])
@pytest.mark.parametrize("name, knobs", CASES, ids=IDS)
def test_hires_pass_same_seed_same_result_as_a1111(name, knobs, strength):
    """The hires pass gives its steps: 20 of the timesteps for int(20 / strength) steps."""
    init = _init(2)
    ours = our_img2img(name, 20, strength, init, [SEED, SEED + 1], hires=True, **knobs)
    theirs = a1111_img2img(name, 20, strength, init, [SEED, SEED + 1], hires=True, **knobs)
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE
    assert _relative(ours, our_img2img(name, 20, strength, init, [SEED, SEED + 1], **knobs)) > 1e-3


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name, knobs", CASES, ids=IDS)
def test_inpainting_blends_the_models_input_as_a1111(name, knobs, batch):
    seeds = [SEED + i for i in range(batch)]
    init = _init(batch)
    keep = torch.zeros(1, 1, *SHAPE[1:])
    keep[..., :, : SHAPE[2] // 2] = 1.0  # keep the left half, repaint the right
    ours = our_img2img(name, 20, 0.75, init, seeds, keep, **knobs)
    theirs = a1111_img2img(name, 20, 0.75, init, seeds, keep, **knobs)
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE
    assert torch.equal(ours[..., : SHAPE[2] // 2], init[..., : SHAPE[2] // 2])  # the kept half comes back as it was
    # and the blend before the model is not the x0 blend the other samplers get
    after = LatentMask(init, keep)
    assert _relative(after.blend(our_img2img(name, 20, 0.75, init, seeds, **knobs)), theirs) > 1e-3


@pytest.mark.parametrize("name", ["DDIM", "PLMS"])
@pytest.mark.parametrize("strength", [0.0, 0.05])
def test_img2img_below_two_kept_timesteps_returns_the_noised_latent_as_a1111(name, strength):
    """t_enc 0 or 1: A1111's loop takes no step and returns the init noised to timesteps[t_enc]."""
    init = _init(1)
    ours = our_img2img(name, 20, strength, init, [SEED])
    theirs = a1111_img2img(name, 20, strength, init, [SEED])
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


def test_the_walk_is_not_a_ladder_to_zero():
    """The oracle tells the old behaviour apart: 20 DDIM steps to sigma 0 on the DDIM schedule."""
    choice = SamplingChoice(sampler_name="DDIM", scheduler="DDIM", steps=20)
    sigmas = sigma_ladder(NO_SCHEDULE, choice)
    x, noise = starting_point(choice.sampler, NoiseSpec((SEED,), SHAPE), sigmas, sigmas, "cpu", torch.float32)
    to_zero = run_sampler(choice.sampler, model_denoiser(choice.sampler, GuidedEps(), _model_sigmas(), Prediction.EPS),
                          x, sigmas, noise=noise)
    assert _relative(to_zero, a1111_txt2img("DDIM", 20, [SEED])) > 1e-3


def test_eta_noise_is_each_images_own_stream():
    """Image 2 of a batch equals its seed alone, and eta changes the picture."""
    pair = our_txt2img("DDIM", 10, [SEED, SEED + 1], eta=0.6)
    assert _relative(pair[1:], our_txt2img("DDIM", 10, [SEED + 1], eta=0.6)) <= 1e-6
    assert _relative(pair, our_txt2img("DDIM", 10, [SEED, SEED + 1])) > 1e-3


@pytest.mark.parametrize("name, expected", [
    # 30 steps: 31 timesteps, so UniPC takes 31 time-uniform steps, with no call at the end
    ("UniPC", torch.linspace(T - 1, 0, 32, dtype=torch.float64)[:-1]),
    ("DDIM", a1111_timesteps(30).flip(0)[:-1].double()),  # 991, 958, ..., 34: none at t = 1, the end
])
def test_the_model_is_asked_at_a1111s_timesteps(name, expected):
    """Exactly where A1111 asks it (UniPC: its log-alpha reading of the table, so fractional
    timesteps come back as they went in, to float32 rounding; read in log sigma they would be
    up to 3e-3 off)."""
    asked: list[float] = []
    net = GuidedEps()

    def recording(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        asked.append(float(t[0]))
        return net(z, t)

    choice = SamplingChoice(sampler_name=name, steps=30)
    sigmas = sigma_ladder(NO_SCHEDULE, choice)
    x, noise = starting_point(choice.sampler, NoiseSpec((SEED,), SHAPE), sigmas, sigmas, "cpu", torch.float32)
    run_sampler(choice.sampler, model_denoiser(choice.sampler, recording, _model_sigmas(), Prediction.EPS), x, sigmas,
                noise=noise)
    assert asked == pytest.approx(expected.tolist(), abs=2e-4)


# ----- A1111's UniPC settings -----

def unipc_knobs(settings: dict) -> dict:
    """Our UniPC's knobs for these settings, as a job gets them (``job_spec.sampler_knobs``)."""
    return dict(sampler_knobs("UniPC", {}, Options(**settings)))


UNIPC_SETTINGS = [
    {"uni_pc_variant": variant, "uni_pc_skip_type": skip, "uni_pc_order": order, "uni_pc_lower_order_final": final}
    for variant in ("bh1", "bh2", "vary_coeff") for skip in ("time_uniform", "time_quadratic", "logSNR")
    for order in (1, 2, 3, 4) for final in (True, False)
]


def _settings_id(settings: dict) -> str:
    return "-".join(str(v) for v in settings.values())


@pytest.mark.parametrize("settings", UNIPC_SETTINGS, ids=_settings_id)
def test_unipc_settings_txt2img_same_result_as_a1111(settings):
    """Every variant, skip type, order and lower-order-final choice (A1111's vary_coeff only
    works on one image: its update mixes the batch axis into the latent's, so one image here)."""
    batch = 1 if settings["uni_pc_variant"] == "vary_coeff" else 2
    seeds = [SEED + i for i in range(batch)]
    ours = our_txt2img("UniPC", 12, seeds, **unipc_knobs(settings))
    theirs = a1111_txt2img("UniPC", 12, seeds, settings=settings)
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE
    if settings != UNIPC_DEFAULTS:  # and the setting matters: the defaults give another picture
        assert _relative(ours, a1111_txt2img("UniPC", 12, seeds)) > 1e-5


@pytest.mark.parametrize("settings", [s for s in UNIPC_SETTINGS if s["uni_pc_order"] in (2, 3)], ids=_settings_id)
def test_unipc_settings_img2img_same_result_as_a1111(settings):
    """Order 3 without lower order final extrapolates over the walk's last, widest steps (to t = 0),
    which magnifies float32 rounding of the latent to ~3e-5 (A1111's float32 loop carries the same
    rounding): there the float64 run must agree to 1e-5 and the float32 run to 5e-5."""
    init = _init(1)
    theirs = a1111_img2img("UniPC", 20, 0.5, init, [SEED], settings=settings)
    magnifies = settings["uni_pc_order"] >= 3 and not settings["uni_pc_lower_order_final"]
    ours = our_img2img("UniPC", 20, 0.5, init, [SEED], dtype=torch.float64 if magnifies else torch.float32,
                       **unipc_knobs(settings))
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE
    if magnifies:
        assert _relative(our_img2img("UniPC", 20, 0.5, init, [SEED], **unipc_knobs(settings)), theirs) <= 5e-5


@pytest.mark.parametrize("variant", ["bh1", "bh2", "vary_coeff"])
@pytest.mark.parametrize("order", [5, 7])
def test_unipc_higher_orders_same_result_as_a1111(variant, order):
    settings = {**UNIPC_DEFAULTS, "uni_pc_variant": variant, "uni_pc_order": order}
    ours = our_txt2img("UniPC", 20, [SEED], **unipc_knobs(settings))
    theirs = a1111_txt2img("UniPC", 20, [SEED], settings=settings)
    assert _relative(ours, theirs) <= RELATIVE_TOLERANCE


def test_unipc_defaults_are_no_knobs_and_other_settings_are():
    assert unipc_knobs(UNIPC_DEFAULTS) == {}
    assert unipc_knobs({"uni_pc_skip_type": "logSNR", "uni_pc_order": 2}) == {"order": 2, "skip_type": "logSNR"}


def test_unipc_order_above_the_steps_is_lowered_where_a1111_stops():
    """A1111's port asserts steps >= order; ours lowers the order to what the steps allow, which
    with lower order final on is the same walk as asking for that order."""
    with pytest.raises(AssertionError, match="order"):
        a1111_txt2img("UniPC", 3, [SEED], settings={"uni_pc_order": 5})  # 4 timesteps: 4 steps < 5
    lowered = our_txt2img("UniPC", 3, [SEED], **unipc_knobs({"uni_pc_order": 5}))
    assert _relative(lowered, a1111_txt2img("UniPC", 3, [SEED], settings={"uni_pc_order": 4})) <= RELATIVE_TOLERANCE
