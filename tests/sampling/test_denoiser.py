"""The eps/v denoiser wrappers and classifier-free guidance.

Model outputs are built here from a known x0 and noise with the defining
relations (eps: z = sqrt(abar) x0 + sqrt(1 - abar) eps; v = sqrt(abar) eps -
sqrt(1 - abar) x0, Salimans & Ho 2022), so the wrapper must recover x0.
"""

from __future__ import annotations

import pytest
import torch

from modules.models.families import Prediction
from modules.sampling.denoiser import CFGDenoiser, DiscreteDenoiser
from modules.sampling.schedules import scaled_linear_alphas_cumprod

ALPHAS_CUMPROD = scaled_linear_alphas_cumprod().double()
TIMESTEPS = [999, 500, 37]


def noisy_batch():
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 5, 5, generator=generator, dtype=torch.float64)
    eps = torch.randn(3, 4, 5, 5, generator=generator, dtype=torch.float64)
    abar = ALPHAS_CUMPROD[TIMESTEPS].reshape(-1, 1, 1, 1)
    sigma = ((1 - abar) / abar).sqrt()
    return x0, eps, abar, sigma


class RecordingModel:
    """Answers with the true eps or v of the sample it was built for, recording its inputs."""

    def __init__(self, x0, eps, abar, prediction):
        self.x0, self.eps, self.abar, self.prediction = x0, eps, abar, prediction
        self.inputs = []

    def __call__(self, z, timestep, **cond):
        self.inputs.append((z, timestep, cond))
        if self.prediction is Prediction.EPS:
            return self.eps
        return self.abar.sqrt() * self.eps - (1 - self.abar).sqrt() * self.x0


@pytest.mark.parametrize("prediction", [Prediction.EPS, Prediction.V])
def test_discrete_denoiser_recovers_x0(prediction):
    x0, eps, abar, sigma = noisy_batch()
    model = RecordingModel(x0, eps, abar, prediction)
    denoiser = DiscreteDenoiser.from_alphas_cumprod(model, ALPHAS_CUMPROD, prediction)
    x = x0 + sigma * eps  # EDM form
    result = denoiser(x, sigma.reshape(-1), context="text")
    assert torch.allclose(result, x0, atol=1e-9)
    z, timestep, cond = model.inputs[0]
    # The model sees the variance-preserving latent at its own training timestep.
    assert torch.allclose(z, abar.sqrt() * x0 + (1 - abar).sqrt() * eps, atol=1e-9)
    assert torch.allclose(timestep, torch.tensor(TIMESTEPS, dtype=timestep.dtype), atol=1e-6)
    assert cond == {"context": "text"}


def test_discrete_denoiser_accepts_one_level_for_the_batch_and_refuses_a_mismatch():
    x0, eps, abar, sigma = noisy_batch()
    denoiser = DiscreteDenoiser.from_alphas_cumprod(lambda z, t: torch.zeros_like(z), ALPHAS_CUMPROD)
    x = torch.ones(3, 4, 5, 5, dtype=torch.float64)
    assert torch.equal(denoiser(x, torch.tensor(2.0)), x)  # zero eps: x0 = x
    with pytest.raises(ValueError, match="2 levels for a batch of 3"):
        denoiser(x, torch.tensor([1.0, 2.0]))


def test_v_prediction_matches_its_scalings():
    """x0 = c_skip x + c_out v with c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1)."""
    x = torch.full((1, 1, 2, 2), 3.0, dtype=torch.float64)
    v = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    denoiser = DiscreteDenoiser.from_alphas_cumprod(lambda z, t: v, ALPHAS_CUMPROD, Prediction.V)
    sigma = 2.0
    expected = 3.0 / (sigma**2 + 1) - sigma / (sigma**2 + 1) ** 0.5 * 0.5
    assert torch.allclose(denoiser(x, torch.tensor([sigma])), torch.full_like(x, expected))


class ContextModel:
    """An inner denoiser whose output depends on x, sigma and the context, recording calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma, context, **extra):
        self.calls.append((x.shape[0], context, extra))
        shift = context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
        out = x * 0.5 + shift + sigma.reshape(-1, 1, 1, 1)
        for value in extra.values():
            out = out + value
        return out


def test_cfg_batches_cond_and_uncond_in_one_call():
    inner = ContextModel()
    cond = torch.full((2, 77, 8), 1.0)
    uncond = torch.full((2, 77, 8), -1.0)
    image_cond = torch.full((2, 1, 3, 3), 0.25)
    cfg = CFGDenoiser(inner, cond, uncond, 7.5, {"c_concat": image_cond})
    x = torch.arange(18.0).reshape(2, 1, 3, 3)
    result = cfg(x, torch.tensor([3.0, 3.0]))
    assert len(inner.calls) == 1
    batch, context, extra = inner.calls[0]
    assert batch == 4 and torch.equal(context, torch.cat([cond, uncond]))
    assert torch.equal(extra["c_concat"], torch.cat([image_cond, image_cond]))
    conditional = x * 0.5 + 1.0 + 3.0 + 0.25
    unconditional = x * 0.5 - 1.0 + 3.0 + 0.25
    assert torch.allclose(result, unconditional + 7.5 * (conditional - unconditional))


def test_cfg_runs_conds_of_different_lengths_separately_and_skips_uncond_at_scale_one():
    inner = ContextModel()
    cond, uncond = torch.full((1, 154, 8), 1.0), torch.full((1, 77, 8), -1.0)
    x = torch.zeros(1, 1, 3, 3)
    result = CFGDenoiser(inner, cond, uncond, 2.0)(x, torch.tensor([1.0]))
    assert [call[0] for call in inner.calls] == [1, 1]
    assert torch.allclose(result, torch.full_like(x, -1.0 + 2.0 * 2.0 + 1.0))
    inner.calls.clear()
    once = CFGDenoiser(inner, cond, uncond, 1.0)(x, torch.tensor([1.0]))
    assert len(inner.calls) == 1 and torch.allclose(once, torch.full_like(x, 2.0))


def test_cfg_refuses_mismatched_batches():
    with pytest.raises(ValueError, match="uncond has 1"):
        CFGDenoiser(ContextModel(), torch.zeros(2, 77, 8), torch.zeros(1, 77, 8), 7.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_discrete_denoiser_runs_on_the_latents_device():
    x0, eps, abar, sigma = noisy_batch()
    model = RecordingModel(x0.cuda(), eps.cuda(), abar.cuda(), Prediction.V)
    denoiser = DiscreteDenoiser.from_alphas_cumprod(model, ALPHAS_CUMPROD, Prediction.V)
    result = denoiser((x0 + sigma * eps).cuda(), sigma.reshape(-1).cuda())
    assert result.device.type == "cuda" and torch.allclose(result.cpu(), x0, atol=1e-6)
