"""Denoisers: a discrete-time noise-prediction model seen as an x0 estimator, and CFG.

Samplers call ``denoiser(x, sigma) -> x0`` in the EDM formulation (Karras et al.
2022): x = x0 + sigma * eps. A Stable Diffusion UNet instead takes the
variance-preserving latent z = x / sqrt(sigma^2 + 1) at a training timestep t
and predicts eps (Ho et al. 2020) or v (Salimans & Ho 2022). ``DiscreteDenoiser``
converts between the two; ``CFGDenoiser`` applies classifier-free guidance (Ho &
Salimans 2022) around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch
from torch import Tensor

from modules.sampling.prediction import Prediction
from modules.sampling.schedules import (
    LOG_SIGMA, lcm_model_sigmas, lcm_stride, sigma_to_timestep, sigmas_from_alphas_cumprod,
)

# model(x_scaled, timestep, **cond) -> eps or v, the UNet's calling convention.
NoisePredictor = Callable[..., Tensor]


@dataclass(frozen=True, eq=False)
class DiscreteDenoiser:
    """``model(x_scaled, timestep, **cond)`` predicting eps or v, as ``denoiser(x, sigma, **cond) -> x0``.

    With c_in = 1 / sqrt(sigma^2 + 1) the model sees z = c_in x at the
    (fractional) timestep whose training sigma is ``sigma`` (log-sigma
    interpolation, ``schedules.sigma_to_timestep``). Then
    - eps: x0 = x - sigma * eps;
    - v (Salimans & Ho 2022, v = alpha eps - sigma_vp x0 with alpha = c_in and
      sigma_vp = sigma c_in): x0 = c_skip x + c_out v, c_skip = 1 / (sigma^2 + 1),
      c_out = -sigma / sqrt(sigma^2 + 1).

    ``interpolation``: how fractional timesteps are read from the table
    (``schedules.LOG_SIGMA``, or ``LOG_ALPHA`` for A1111's UniPC, so the model is asked at
    exactly the timestep UniPC's walk was built from).
    """

    model: NoisePredictor
    model_sigmas: Tensor  # the model's training sigmas, ascending in t
    prediction: Prediction = Prediction.EPS
    interpolation: str = LOG_SIGMA

    @classmethod
    def from_alphas_cumprod(
        cls, model: NoisePredictor, alphas_cumprod: Tensor, prediction: Prediction = Prediction.EPS
    ) -> "DiscreteDenoiser":
        return cls(model, sigmas_from_alphas_cumprod(alphas_cumprod), Prediction(prediction))

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sigma = _per_image(sigma, x)
        table = self.model_sigmas.to(device=x.device)
        timestep = sigma_to_timestep(sigma, table, self.interpolation)
        column = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        c_in = 1 / (column**2 + 1) ** 0.5
        output = self.model(x * c_in.to(x.dtype), timestep, **cond)
        if self.prediction is Prediction.EPS:
            return (x - output * column).to(x.dtype)
        c_skip = 1 / (column**2 + 1)
        c_out = -column * c_in
        return (x * c_skip + output * c_out).to(x.dtype)


# LCM's boundary condition (Luo et al. 2023, eq. 7 with Song et al. 2023's c_skip/c_out):
# sigma_data 0.5, timestep scaled by 10, as the LCM releases and A1111 use.
LCM_SIGMA_DATA = 0.5
LCM_TIMESTEP_SCALING = 10.0


@dataclass(frozen=True, eq=False)
class LCMDenoiser:
    """A latent consistency model as ``denoiser(x, sigma, **cond) -> x0``, as A1111 v1.10 runs LCM.

    The model is asked at the LCM timestep (``schedules.lcm_model_sigmas``)
    nearest to sigma in log sigma, never between two; its x0 estimate (as
    ``DiscreteDenoiser``, with the exact sigma) then goes through the consistency
    boundary condition f = c_out x0 + c_skip x, with c_skip = s_d^2 / (s^2 + s_d^2)
    and c_out = s / sqrt(s^2 + s_d^2) at s = 10 t (the x here being the EDM latent,
    as in A1111).
    """

    model: NoisePredictor
    model_sigmas: Tensor  # the model's full training sigmas, ascending in t
    prediction: Prediction = Prediction.EPS

    @cached_property
    def _lcm_sigmas(self) -> Tensor:
        # Once per run: picking the 50 levels indexes with a host list, a copy to the device.
        return lcm_model_sigmas(self.model_sigmas)

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sigma = _per_image(sigma, x)
        table = self._lcm_sigmas.to(device=x.device, dtype=sigma.dtype)
        stride = lcm_stride(self.model_sigmas)
        nearest = (sigma.log()[:, None] - table.log()[None, :]).abs().argmin(dim=1)
        timestep = (nearest * stride + (stride - 1)).to(sigma.dtype)
        column = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        c_in = 1 / (column**2 + 1) ** 0.5
        output = self.model(x * c_in.to(x.dtype), timestep, **cond)
        if self.prediction is Prediction.EPS:
            denoised = x - output * column
        else:
            denoised = x * (1 / (column**2 + 1)) + output * (-column * c_in)
        scaled = (timestep * LCM_TIMESTEP_SCALING).reshape(column.shape)
        c_skip = LCM_SIGMA_DATA**2 / (scaled**2 + LCM_SIGMA_DATA**2)
        c_out = scaled / (scaled**2 + LCM_SIGMA_DATA**2) ** 0.5
        return (denoised * c_out + x * c_skip).to(x.dtype)


@dataclass
class GuidedCall:
    """One guided model call as observers see it before the call (A1111's ``CFGDenoiserParams``).

    ``x``/``sigma`` hold every row the model evaluates: the conditional rows first (one per image,
    or one per AND part), then one unconditional row per image; ``cond``/``uncond`` are the text
    conditionings of those rows. An observer may replace any of them (same shapes) and the call
    uses what it finds. ``step`` counts from 0 within the ladder being walked, of ``steps``.
    """

    x: Tensor
    sigma: Tensor
    cond: Tensor
    uncond: Tensor
    extra_inputs: dict[str, Tensor]
    step: int
    steps: int


class GuidanceObserver(Protocol):
    """Sees, and may change, every guided model call (the hook extensions such as CFG
    schedulers and attention couplers use: A1111's ``on_cfg_denoiser`` family)."""

    def before_model(self, call: GuidedCall) -> None:
        """Before the model runs; may replace the tensors of ``call``."""

    def after_model(self, outputs: Tensor, call: GuidedCall) -> Tensor:
        """The model's x0 estimates for every row of ``call``; returns those to combine."""

    def after_guidance(self, denoised: Tensor, call: GuidedCall) -> Tensor:
        """The guided result, one per image; returns the one the sampler gets."""


@dataclass(frozen=True, eq=False)
class Observation:
    """The observers of one run and the ladder it walks (to tell them the step)."""

    observers: Sequence[GuidanceObserver]
    ladder: Tensor

    def call(self, x: Tensor, sigma: Tensor, cond: Tensor, uncond: Tensor, extra: Mapping[str, Tensor]) -> GuidedCall:
        # One read back to the host per model call, paid only while an observer watches:
        # observers take the step as a number (A1111 passes ints).
        step = int(steps_of_sigmas(sigma[:1], self.ladder)[0])
        observed = GuidedCall(x, sigma, cond, uncond, dict(extra), step, len(self.ladder) - 1)
        for observer in self.observers:
            observer.before_model(observed)
        return observed

    def outputs(self, outputs: Tensor, call: GuidedCall) -> Tensor:
        for observer in self.observers:
            outputs = observer.after_model(outputs, call)
        return outputs

    def guided(self, denoised: Tensor, call: GuidedCall) -> Tensor:
        for observer in self.observers:
            denoised = observer.after_guidance(denoised, call)
        return denoised


def _evaluate(inner: Callable[..., Tensor], call: GuidedCall, cond_rows: int) -> Tensor:
    """Every row of an observed call: one model call when cond and uncond have the same shape,
    else the conditional and unconditional rows as two."""
    if call.cond.shape[1:] == call.uncond.shape[1:]:
        return inner(call.x, call.sigma, context=torch.cat([call.cond, call.uncond]), **call.extra_inputs)
    head = {name: value[:cond_rows] for name, value in call.extra_inputs.items()}
    tail = {name: value[cond_rows:] for name, value in call.extra_inputs.items()}
    return torch.cat([inner(call.x[:cond_rows], call.sigma[:cond_rows], context=call.cond, **head),
                      inner(call.x[cond_rows:], call.sigma[cond_rows:], context=call.uncond, **tail)])


def _per_image(sigma: Tensor | float, x: Tensor) -> Tensor:
    """sigma as a float32-or-wider 1-D tensor with one level per image of x."""
    sigma = torch.as_tensor(sigma, device=x.device)
    dtype = torch.promote_types(sigma.dtype, torch.float32) if sigma.is_floating_point() else torch.float32
    sigma = sigma.to(dtype).reshape(-1)
    if sigma.numel() == 1:
        sigma = sigma.expand(x.shape[0])
    if sigma.numel() != x.shape[0]:
        raise ValueError(f"sigma has {sigma.numel()} levels for a batch of {x.shape[0]} images")
    return sigma


@dataclass(frozen=True, eq=False)
class CFGDenoiser:
    """Classifier-free guidance (Ho & Salimans 2022): uncond + scale * (cond - uncond).

    ``inner(x, sigma, context=..., **extra_inputs) -> x0`` is usually a
    ``DiscreteDenoiser``. ``cond`` and ``uncond`` are per-image text
    conditionings (opaque tensors, batch first) passed as ``context``. When their
    shapes agree, one model call evaluates both: x and sigma repeated, contexts
    concatenated as [cond, uncond]; otherwise (prompts of different lengths) they
    run as two calls. ``extra_inputs`` (e.g. an inpainting model's image
    conditioning) are the same for both halves and are repeated likewise. With
    scale 1 the unconditional half is skipped: the result is the conditional
    prediction.
    """

    inner: Callable[..., Tensor]
    cond: Tensor
    uncond: Tensor
    scale: float
    extra_inputs: Mapping[str, Tensor] = field(default_factory=dict)
    observation: Observation | None = None  # observers see every row, even with scale 1

    def __post_init__(self) -> None:
        if self.cond.shape[0] != self.uncond.shape[0]:
            raise ValueError(
                f"CFG: cond has {self.cond.shape[0]} images but uncond has {self.uncond.shape[0]}; "
                "each image needs its own negative conditioning"
            )

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = _per_image(sigma, x)
        if self.observation is not None:
            return self._observed(x, sigma, self.observation)
        if self.scale == 1:
            return self.inner(x, sigma, context=self.cond, **self.extra_inputs)
        if self.cond.shape == self.uncond.shape:
            doubled = {name: torch.cat([value, value]) for name, value in self.extra_inputs.items()}
            both = self.inner(
                torch.cat([x, x]), torch.cat([sigma, sigma]), context=torch.cat([self.cond, self.uncond]), **doubled
            )
            conditional, unconditional = both.chunk(2)
        else:
            conditional = self.inner(x, sigma, context=self.cond, **self.extra_inputs)
            unconditional = self.inner(x, sigma, context=self.uncond, **self.extra_inputs)
        return unconditional + (conditional - unconditional) * self.scale

    def _observed(self, x: Tensor, sigma: Tensor, observation: Observation) -> Tensor:
        doubled = {name: torch.cat([value, value]) for name, value in self.extra_inputs.items()}
        call = observation.call(torch.cat([x, x]), torch.cat([sigma, sigma]), self.cond, self.uncond, doubled)
        conditional, unconditional = observation.outputs(_evaluate(self.inner, call, x.shape[0]), call).chunk(2)
        return observation.guided(unconditional + (conditional - unconditional) * self.scale, call)


class StepConditioningSource(Protocol):
    """Text conditioning that depends on the sampling step (prompt editing, alternation, AND)."""

    table: Tensor  # every distinct text encoded, [texts, tokens, width]

    def rows_at(self, steps: Sequence[int]) -> tuple[list[int], list[int], list[float], list[int]]:
        """Per image's 0-based step: (cond rows of ``table``, the image of each row, each row's
        weight, uncond row per image). Images and weights must not depend on the steps."""
        ...


def steps_of_sigmas(sigma: Tensor, ladder: Tensor) -> Tensor:
    """The 0-based step each image is at: the last ladder level (descending, final 0 excluded)
    at or above its sigma. Evaluations between two levels (midpoints of second-order samplers)
    belong to the step that started there; a level is matched with a small relative tolerance.
    Computed where sigma is (no read back to the host)."""
    wide = torch.float32 if sigma.device.type == "mps" else torch.float64  # MPS has no float64
    levels = ladder[:-1].to(sigma.device, wide)
    counts = (levels[None, :] >= sigma.to(wide)[:, None] * (1 - 1e-5)).sum(dim=1) - 1
    return counts.clamp(0, max(len(levels) - 1, 0))


@dataclass(frozen=True)
class _StepTables:
    """The conditioning's row numbers for every step of a ladder, on the sampling device, so a
    denoiser call picks its rows by indexing (A1111 looks them up on the host every step,
    which waits for the GPU each time)."""

    cond_rows: Tensor  # [steps, cond rows]: table row of cond row j at each step
    uncond_rows: Tensor  # [steps, images]
    images: Tensor  # [cond rows]: the image of each cond row
    weights: Tensor  # [cond rows]: AND weight, float64 (cast to the output dtype before scaling)
    plain: bool  # one cond row per image, weight 1, scale 1: no uncond needed

    @classmethod
    def build(cls, source: StepConditioningSource, steps: int, batch: int, scale: float,
              device: torch.device) -> "_StepTables":
        per_step = [source.rows_at([step] * batch) for step in range(max(steps, 1))]
        _, images, weights, _ = per_step[0]
        return cls(
            cond_rows=torch.tensor([rows for rows, *_ in per_step], dtype=torch.long, device=device),
            uncond_rows=torch.tensor([uncond for *_, uncond in per_step], dtype=torch.long, device=device),
            images=torch.tensor(images, dtype=torch.long, device=device),
            weights=torch.tensor(weights, dtype=torch.float64, device=device),
            plain=scale == 1 and images == list(range(batch)) and all(w == 1 for w in weights),
        )


@dataclass(frozen=True, eq=False)
class ScheduledCFGDenoiser:
    """Classifier-free guidance whose text conditioning follows the sampling step, with composable
    sub-prompts (Liu et al. 2022, "Compositional Visual Generation with Composable Diffusion
    Models"): denoised = uncond + scale * sum_j w_j (cond_j - uncond), each AND part j denoised on
    its own. The step is read from sigma against the ladder being walked (``steps_of_sigmas``),
    so samplers stay unaware of prompts. All rows share one model call.
    """

    inner: Callable[..., Tensor]
    conditioning: StepConditioningSource
    ladder: Tensor  # the sigmas this run walks, ending in 0
    scale: float
    extra_inputs: Mapping[str, Tensor] = field(default_factory=dict)
    observation: Observation | None = None  # observers see every row, even with scale 1
    _tables: dict = field(default_factory=dict, init=False, repr=False)  # (batch, device) -> _StepTables

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = _per_image(sigma, x)
        tables = self._tables_for(x)
        step = steps_of_sigmas(sigma, self.ladder)
        table = self.conditioning.table.to(x.device)
        parts = torch.arange(tables.images.shape[0], device=x.device)
        cond = table[tables.cond_rows[step[tables.images], parts]]
        uncond = table[tables.uncond_rows[step, torch.arange(x.shape[0], device=x.device)]]
        if tables.plain and self.observation is None:
            return self.inner(x, sigma, context=cond, **self.extra_inputs)
        rows = tables.images
        extra = {name: torch.cat([value[rows], value]) for name, value in self.extra_inputs.items()}
        x_in, sigma_in = torch.cat([x[rows], x]), torch.cat([sigma[rows], sigma])
        if self.observation is None:
            both = self.inner(x_in, sigma_in, context=torch.cat([cond, uncond]), **extra)
        else:
            call = self.observation.call(x_in, sigma_in, cond, uncond, extra)
            both = self.observation.outputs(_evaluate(self.inner, call, len(rows)), call)
        conditional, unconditional = both[: len(rows)], both[len(rows) :]
        factors = (tables.weights.to(both.dtype) * self.scale).reshape(-1, *([1] * (x.dim() - 1)))
        guided = unconditional.index_add(0, rows, (conditional - unconditional[rows]) * factors)
        return guided if self.observation is None else self.observation.guided(guided, call)

    def _tables_for(self, x: Tensor) -> _StepTables:
        key = (x.shape[0], x.device)
        if key not in self._tables:  # once per run: the batch and device do not change between steps
            self._tables[key] = _StepTables.build(self.conditioning, len(self.ladder) - 1, x.shape[0],
                                                  self.scale, x.device)
        return self._tables[key]
