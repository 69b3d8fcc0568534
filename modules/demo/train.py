"""Train the bundled model: ``python launch.py train-demo``.

Four phases, seeded and reproducible (bit for bit on the same CPU):
1. the autoencoder on the rendered pictures (L1 + edge loss + a small KL term,
   as the LDM autoencoder without its adversarial part; Rombach et al. 2022),
   with half the L1 weighted so the shape counts as much as the background;
2. its latent space normalised so that latents times SD's 0.18215 have unit
   variance per channel (an exact reparameterisation of its 1x1 convolutions),
   so every SD tool uses the model with SD's own constants;
3. the UNet and the text encoder together on eps-prediction with SD's scaled
   linear schedule (Ho et al. 2020), 10% empty captions for classifier-free
   guidance (Ho & Salimans 2022), and an exponential moving average of the
   weights, which is what is saved;
4. the decoder alone, on the now fixed latent space: it sharpens the pictures
   without moving a single latent, so the UNet stays valid (as Stability AI's
   sd-vae-ft-mse refined SD's decoder after the fact). The tiny autoencoder
   learns its latent code early and its decoder slowly; decoder steps are also
   cheaper than phase-1 steps (no encoder gradients).
Phases 1 and 4 print a round-trip check: every evaluation combination encoded,
decoded and read as ``evaluate-demo`` reads a generated picture, which is the
ceiling on what the whole model can score.
The result is an SD1-layout safetensors file with ModelSpec metadata.
``--refine-decoder FILE`` runs phase 4 alone on an existing demo checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from modules.demo.dataset import ShapeSample, make_dataset, render
from modules.demo.evaluate import accuracies, evaluation_prompts, judge, read_picture
from modules.demo.model import (
    DEMO_FILE_NAME, build_nets, checkpoint_state, modelspec_metadata, save_checkpoint,
)
from modules.demo.sample_grid import save_sample_grid
from modules.models.detect import VAE_PREFIX, detect_checkpoint
from modules.models.load import build_vae, split_checkpoint
from modules.models.safe_load import load_state_dict, read_safetensors_metadata
from modules.nets.text_encoders import TextEncoder
from modules.nets.tokenizer import build_clip_tokenizer
from modules.nets.unet import UNetModel
from modules.nets.vae import AutoencoderKL
from modules.sampling.schedules import scaled_linear_alphas_cumprod

LATENT_SCALE = 0.18215  # SD1's latent scale factor (LDM paper, appendix)


@dataclass(frozen=True)
class TrainingRecipe:
    seed: int = 20261122
    resolution: int = 64
    dataset_size: int = 40000
    vae_steps: int = 1200
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_check_every: int = 400
    kl_weight: float = 1e-6
    edge_weight: float = 1.0
    region_balance: float = 0.5
    unet_steps: int = 3000
    unet_batch: int = 64
    # 1e-3, not 5e-4: at 5e-4 the UNet phase on this CPU budget (3000 x 64 samples) left 19% of pictures
    # with the shape and background colours swapped; at 1e-3, on the same autoencoder, none (8 seeds x 224).
    unet_lr: float = 1e-3
    text_lr: float = 1e-3
    warmup_steps: int = 200
    ema_decay: float = 0.999
    sample_every: int = 1000
    decoder_steps: int = 1000
    decoder_batch: int = 16
    decoder_lr: float = 5e-4

    def scaled(self, factor: float) -> "TrainingRecipe":
        """The same recipe with step counts scaled (a quick smoke run, or a longer one)."""
        steps = lambda n: max(1, round(n * factor))  # noqa: E731
        return dataclasses.replace(
            self, vae_steps=steps(self.vae_steps), unet_steps=steps(self.unet_steps),
            decoder_steps=steps(self.decoder_steps),
            warmup_steps=min(self.warmup_steps, steps(self.unet_steps) // 4 + 1),
            sample_every=steps(self.sample_every), dataset_size=max(256, steps(self.dataset_size)),
        )


class ProgressLine:
    """One status line on stderr, redrawn at most once a second: step, loss, elapsed, ETA."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.started, self.shown = label, total, time.monotonic(), 0.0
        self.loss: float | None = None

    def update(self, step: int, loss: Tensor) -> None:
        now = time.monotonic()
        if now - self.shown < 1.0 and step != self.total:
            return  # reading the loss waits for the device: only when the line is redrawn
        self.shown = now
        self.loss = float(loss)
        elapsed = now - self.started
        eta = elapsed / step * (self.total - step)
        bar = "#" * (20 * step // self.total)
        sys.stderr.write(f"\r{self.label} [{bar:<20}] {step}/{self.total} loss {self.loss:.4f} "
                         f"{elapsed / 60:5.1f} min, {eta / 60:5.1f} min left ")
        if step == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def learning_rate_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% (Loshchilov & Hutter 2017)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def batches(count: int, batch: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless shuffled index batches (a fresh permutation per epoch), on the generator's device."""
    while True:
        order = torch.randperm(count, generator=generator, device=generator.device)
        for start in range(0, count - batch + 1, batch):
            yield order[start : start + batch]


def images_to_tensor(images: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1] on ``device``."""
    pixels = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
    return pixels.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def edge_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """L1 between horizontal and vertical finite differences: penalises blurred edges."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(reconstruction), dx(target)) + F.l1_loss(dy(reconstruction), dy(target))


SHAPE_THRESHOLD = 0.25  # in [-1, 1] units per channel: well under the nearest palette colours' gap (0.6)


def region_weights(pixels: Tensor, balance: float) -> Tensor:
    """Per-pixel L1 weights [N, 1, H, W], mean 1 per picture: a ``balance`` share weighs the shape and the
    background equally, the rest weighs every pixel equally. A shape covers 3-40% of a picture, so under
    plain L1 its colour is a minor term that the autoencoder learns last (33% of shape colours right after
    800 steps, against 94% with this weighting at 0.5). Shape pixels are those that differ from the
    top-left pixel, which is background in every training picture (shapes keep 9% of the side clear)."""
    shape = ((pixels - pixels[:, :, :1, :1]).abs().amax(dim=1, keepdim=True) > SHAPE_THRESHOLD).float()
    share = shape.mean(dim=(2, 3), keepdim=True).clamp(0.02, 0.98)
    balanced = 0.5 * (shape / share + (1 - shape) / (1 - share))
    return balance * balanced + (1 - balance)


def pixel_loss(reconstruction: Tensor, pixels: Tensor, recipe: TrainingRecipe) -> Tensor:
    weights = region_weights(pixels, recipe.region_balance)
    reconstruction = reconstruction.float()  # bf16 under autocast: the losses are summed in fp32
    l1 = (weights * (reconstruction - pixels).abs()).mean()
    return l1 + recipe.edge_weight * edge_loss(reconstruction, pixels)


def vae_loss(vae: AutoencoderKL, pixels: Tensor, noise: Tensor, recipe: TrainingRecipe) -> Tensor:
    mean, logvar = vae.encode_moments(pixels)
    z = mean + torch.exp(0.5 * logvar) * noise
    reconstruction = vae.decode(z)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
    return pixel_loss(reconstruction, pixels, recipe) + recipe.kl_weight * kl


def train_vae(vae: AutoencoderKL, images: np.ndarray, recipe: TrainingRecipe, device: torch.device,
              generator: torch.Generator) -> dict[str, float]:
    """Phase 1, under bf16 autocast (about 1.4x the samples per second on CPUs with bf16 units, and on
    GPUs; weights and optimiser state stay fp32). Returns the last round-trip check."""
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    progress = ProgressLine("autoencoder", recipe.vae_steps)
    order = batches(len(images), recipe.vae_batch, generator)
    stored = torch.from_numpy(images).to(device)  # uint8 on the device: batches are indexed there
    for step in range(recipe.vae_steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.vae_lr * learning_rate_factor(step, recipe.vae_steps, recipe.warmup_steps)
        pixels = images_to_tensor(stored[next(order)], device)
        latent_shape = (len(pixels), vae.config.embed_dim, *(s // 8 for s in pixels.shape[-2:]))
        noise = torch.randn(latent_shape, generator=generator, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = vae_loss(vae, pixels, noise, recipe)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.update(step + 1, loss.detach())
        if (step + 1) % recipe.vae_check_every == 0 and step + 1 < recipe.vae_steps:
            report_round_trip(f"autoencoder step {step + 1}", vae, recipe.resolution, device)
    vae.eval()
    return report_round_trip(f"autoencoder step {recipe.vae_steps}", vae, recipe.resolution, device)


def round_trip_pictures(resolution: int) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """Every evaluation combination (colour, shape, background) drawn at two sizes."""
    combos = [(c, s, b, r) for c, s, b, _ in evaluation_prompts() for r in (0.22, 0.3)]
    pictures = [np.asarray(render(ShapeSample(s, c, b, radius=r), resolution)) for c, s, b, r in combos]
    return [combo[:3] for combo in combos], np.stack(pictures)


@torch.no_grad()
def round_trip_check(vae: AutoencoderKL, resolution: int, device: torch.device) -> dict[str, float]:
    """Encode (posterior mean) and decode every evaluation combination, and read the result as the
    evaluation reads a generated picture: the autoencoder's ceiling on what the whole model can score."""
    was_training = vae.training
    vae.eval()
    combos, pictures = round_trip_pictures(resolution)
    pixels = images_to_tensor(pictures, device)
    decoded = torch.cat([vae.decode(vae.encode_moments(chunk)[0]) for chunk in pixels.split(64)])
    vae.train(was_training)
    as_uint8 = ((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    rows = [judge(read_picture(Image.fromarray(p)), c, s, b) for (c, s, b), p in zip(combos, as_uint8)]
    scores = {k: v for k, v in accuracies(rows).items() if k != "images"}
    return scores | {"l1": float((decoded - pixels).abs().mean())}


def report_round_trip(label: str, vae: AutoencoderKL, resolution: int, device: torch.device) -> dict[str, float]:
    """Run the round-trip check, print it under ``label`` and return it."""
    check = round_trip_check(vae, resolution, device)
    print(f"{label}: round trip shape colour {check['shape_colour']:.1%}, background {check['background']:.1%}, "
          f"shape {check['shape']:.1%}, L1 {check['l1']:.4f}", flush=True)
    return check


@torch.no_grad()
def encode_all(vae: AutoencoderKL, images: np.ndarray, device: torch.device, batch: int = 256) -> tuple[Tensor, Tensor]:
    """Posterior means and standard deviations of every image, on the CPU."""
    means, stds = [], []
    for start in range(0, len(images), batch):
        mean, logvar = vae.encode_moments(images_to_tensor(images[start : start + batch], device))
        means.append(mean.cpu())
        stds.append(torch.exp(0.5 * logvar).cpu())
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def normalise_latent_space(vae: AutoencoderKL, means: Tensor) -> tuple[Tensor, Tensor]:
    """Rewrite quant_conv / post_quant_conv so latents become (z - m) * k per channel, with
    k = 1 / (0.18215 * std): the decoder sees the same z as before, so images are unchanged.
    Returns (m, k) to transform already-encoded latents the same way."""
    m = means.mean(dim=(0, 2, 3))
    k = 1.0 / (LATENT_SCALE * means.std(dim=(0, 2, 3)))
    channels = vae.config.embed_dim
    weight, bias = vae.quant_conv.weight, vae.quant_conv.bias  # [2C, 2Z, 1, 1]: mean rows, then log-variance rows
    device = weight.device
    m_d, k_d = m.to(device), k.to(device)
    weight[:channels] *= k_d.view(-1, 1, 1, 1)
    bias[:channels] = (bias[:channels] - m_d) * k_d
    bias[channels:] += 2 * torch.log(k_d)
    post = vae.post_quant_conv  # z = z' / k + m
    post.bias += (post.weight[:, :, 0, 0] @ m_d)
    post.weight /= k_d.view(1, -1, 1, 1)
    return m, k


def latent_rgb_factors(latents: Tensor, images: np.ndarray) -> list[list[float]]:
    """Least-squares map from each scaled latent pixel to the mean colour of its 8x8 block in [-1, 1]:
    the "Approx cheap" live preview factors for this model (rows: latent channels)."""
    pixels = torch.from_numpy(images[: len(latents)]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    blocks = F.avg_pool2d(pixels, 8)
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).double()
    y = blocks.permute(0, 2, 3, 1).reshape(-1, 3).double()
    solution = torch.linalg.lstsq(x, y).solution
    return [[round(float(v), 4) for v in row] for row in solution]


def refine_decoder(vae: AutoencoderKL, images: np.ndarray, posterior: tuple[Tensor, Tensor], recipe: TrainingRecipe,
                   device: torch.device, generator: torch.Generator) -> dict[str, float]:
    """Phase 4: the decoder (and post_quant_conv) alone, on posterior samples of the fixed encoder, with
    phase 1's pixel losses. Under bf16 autocast, since its convolutions run about 1.5x faster so on CPUs
    with bf16 units (and on GPUs); the weights and the optimiser state stay fp32. Returns the round-trip
    check after it, in a whole run and in ``--refine-decoder`` alike."""
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    optimizer = torch.optim.AdamW(params, lr=recipe.decoder_lr, weight_decay=0.0)
    means, stds = posterior
    stored = torch.from_numpy(images)
    progress = ProgressLine("decoder", recipe.decoder_steps)
    order = batches(len(images), recipe.decoder_batch, generator)
    vae.decoder.train()
    for step in range(recipe.decoder_steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.decoder_lr * learning_rate_factor(step, recipe.decoder_steps, recipe.warmup_steps)
        index = next(order).cpu()
        pixels = images_to_tensor(stored[index], device)
        mean, std = means[index].to(device), stds[index].to(device)
        z = mean + std * torch.randn(mean.shape, generator=generator, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = pixel_loss(vae.decode(z), pixels, recipe)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.update(step + 1, loss.detach())
    vae.eval()
    return report_round_trip("decoder refined", vae, recipe.resolution, device)


def tokenize(captions: list[str]) -> Tensor:
    """Captions as the pipeline encodes a one-chunk prompt: start, tokens, end, end-padding to 77."""
    tokenizer = build_clip_tokenizer(pad_token_id=49407)
    ids = tokenizer(captions, add_special_tokens=True, padding="max_length", max_length=77, truncation=True)
    return torch.tensor(ids.input_ids, dtype=torch.long)


class EMA:
    """An exponential moving average of parameters (Polyak averaging), on the same device."""

    def __init__(self, modules: list[nn.Module], decay: float):
        self.params = [p for module in modules for p in module.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm-up: early weights are forgotten fast
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange live and averaged weights (call twice to swap back)."""
        for param, shadow in zip(self.params, self.shadow):
            tmp = param.detach().clone()
            param.copy_(shadow)
            shadow.copy_(tmp)


def diffusion_loss(unet: UNetModel, text_encoder: TextEncoder, latents: Tensor, ids: Tensor,
                   alphas_cumprod: Tensor, generator: torch.Generator) -> Tensor:
    device = latents.device
    timesteps = torch.randint(0, len(alphas_cumprod), (len(latents),), generator=generator, device=device)
    noise = torch.randn(latents.shape, generator=generator, device=device)
    alpha = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
    context = text_encoder.encode(ids)
    return F.mse_loss(unet(noisy, timesteps, context), noise)


def train_unet(
    unet: UNetModel, text_encoder: TextEncoder, posterior: tuple[Tensor, Tensor], ids: Tensor,
    recipe: TrainingRecipe, device: torch.device, generator: torch.Generator,
    on_sample: Callable[[int, EMA], None],
) -> EMA:
    unet.train(), text_encoder.train()
    optimizer = torch.optim.AdamW([
        {"params": unet.parameters(), "lr": recipe.unet_lr, "base_lr": recipe.unet_lr},
        {"params": text_encoder.parameters(), "lr": recipe.text_lr, "base_lr": recipe.text_lr},
    ], weight_decay=0.01, fused=device.type == "cuda")
    ema = EMA([unet, text_encoder], recipe.ema_decay)
    alphas_cumprod = scaled_linear_alphas_cumprod().to(device)
    means, stds = (t.to(device) for t in posterior)
    ids = ids.to(device)
    progress = ProgressLine("unet + text", recipe.unet_steps)
    order = batches(len(means), recipe.unet_batch, generator)
    for step in range(recipe.unet_steps):
        factor = learning_rate_factor(step, recipe.unet_steps, recipe.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        index = next(order)
        sample = means[index] + stds[index] * torch.randn(means[index].shape, generator=generator, device=device)
        loss = diffusion_loss(unet, text_encoder, sample * LATENT_SCALE, ids[index], alphas_cumprod, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*unet.parameters(), *text_encoder.parameters()], 1.0)
        optimizer.step()
        ema.update(step)
        progress.update(step + 1, loss.detach())
        if (step + 1) % recipe.sample_every == 0 or step + 1 == recipe.unet_steps:
            on_sample(step + 1, ema)
    unet.eval(), text_encoder.eval()
    return ema


def train(recipe: TrainingRecipe, out: Path, samples_dir: Path, device: torch.device) -> dict:
    """All three phases; writes ``out`` and sample grids; returns the training summary."""
    started = time.monotonic()
    generator = torch.Generator(device=device).manual_seed(recipe.seed)
    images, captions = make_dataset(recipe.dataset_size, recipe.resolution, recipe.seed)
    init_generator = torch.Generator().manual_seed(recipe.seed)
    unet, vae, text_encoder = (net.to(device) for net in build_nets(init_generator))
    vae_started = time.monotonic()
    vae_check = train_vae(vae, images, recipe, device, generator)
    vae_minutes = (time.monotonic() - vae_started) / 60
    means, stds = encode_all(vae, images, device)
    m, k = normalise_latent_space(vae, means)
    means, stds = (means - m.view(1, -1, 1, 1)) * k.view(1, -1, 1, 1), stds * k.view(1, -1, 1, 1)
    factors = latent_rgb_factors(means[:2048] * LATENT_SCALE, images)
    ids = tokenize(captions)

    def write(step: int, ema: EMA, path: Path, summary: dict) -> None:
        ema.swap()
        state = checkpoint_state(unet, vae, text_encoder, torch.float16)
        ema.swap()
        save_checkpoint(path, state, modelspec_metadata(recipe.resolution, factors, {**summary, "step": step}))

    summary = {"recipe": dataclasses.asdict(recipe), "device": str(device), "vae_minutes": round(vae_minutes, 2),
               "vae_round_trip": rounded(vae_check)}

    def on_sample(step: int, ema: EMA) -> None:
        snapshot = samples_dir / "latest.safetensors"
        write(step, ema, snapshot, summary)
        save_sample_grid(snapshot, samples_dir / f"step-{step:06d}.png", device)

    unet_started = time.monotonic()
    ema = train_unet(unet, text_encoder, (means, stds), ids, recipe, device, generator, on_sample)
    summary["unet_minutes"] = round((time.monotonic() - unet_started) / 60, 2)
    decoder_started = time.monotonic()
    decoder_check = refine_decoder(vae, images, (means, stds), recipe, device, decoder_generator(recipe, device))
    summary |= {"decoder_minutes": round((time.monotonic() - decoder_started) / 60, 2),
                "decoder_round_trip": rounded(decoder_check),
                "total_minutes": round((time.monotonic() - started) / 60, 2)}
    write(recipe.unet_steps, ema, out, summary)
    save_sample_grid(out, samples_dir / "final.png", device)
    return summary


def rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


def decoder_generator(recipe: TrainingRecipe, device: torch.device) -> torch.Generator:
    """Phase 4 draws from its own stream, the same in a whole run and in ``--refine-decoder``."""
    return torch.Generator(device=device).manual_seed(recipe.seed + 1)


def refine_checkpoint_decoder(checkpoint: Path, recipe: TrainingRecipe, out: Path, device: torch.device) -> dict:
    """Phase 4 alone on a demo checkpoint that ``train`` wrote: the UNet and text encoder are copied
    unchanged, the decoder is refined on the recipe's dataset, and the training summary records it
    (refinements accumulate: a refined file can be refined again)."""
    started = time.monotonic()
    metadata = read_safetensors_metadata(checkpoint)
    if "demo.training" not in metadata:
        raise SystemExit(f"train-demo: {checkpoint} is not a demo checkpoint written by train-demo")
    state = load_state_dict(checkpoint)
    # The same path as any checkpoint: the file's own sizes, every key checked; trained in fp32.
    vae = build_vae(detect_checkpoint(checkpoint).vae, split_checkpoint(state, checkpoint).vae, checkpoint)
    vae = vae.to(device, torch.float32).eval()
    images, _ = make_dataset(recipe.dataset_size, recipe.resolution, recipe.seed)
    posterior = encode_all(vae, images, device)
    check = refine_decoder(vae, images, posterior, recipe, device, decoder_generator(recipe, device))
    dtype = next(iter(state.values())).dtype
    state |= {VAE_PREFIX + k: v.detach().to("cpu", dtype).contiguous() for k, v in vae.state_dict().items()}
    training = json.loads(metadata["demo.training"])
    training.setdefault("decoder_refinements", []).append({
        "steps": recipe.decoder_steps, "batch": recipe.decoder_batch, "lr": recipe.decoder_lr,
        "device": str(device), "minutes": round((time.monotonic() - started) / 60, 2), "round_trip": rounded(check),
    })
    metadata["demo.training"] = json.dumps(training, sort_keys=True)
    save_checkpoint(out, state, metadata)
    return training


def parse_args(argv: list[str], root: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="launch.py train-demo", description="train the bundled demo model")
    parser.add_argument("--out", type=Path, default=root / "models" / "Stable-diffusion" / DEMO_FILE_NAME)
    parser.add_argument("--samples-dir", type=Path, default=root / "outputs" / "demo-training")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step count (0.01 = a smoke run)")
    parser.add_argument("--seed", type=int, default=TrainingRecipe.seed)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one recipe field, e.g. --set unet_batch=256 (repeatable)")
    parser.add_argument("--refine-decoder", type=Path, default=None, metavar="CHECKPOINT",
                        help="run only the decoder phase on CHECKPOINT (written by train-demo), writing --out")
    return parser.parse_args(argv)


def recipe_from_args(args: argparse.Namespace) -> TrainingRecipe:
    recipe = dataclasses.replace(TrainingRecipe(), seed=args.seed).scaled(args.scale)
    types = {f.name: f.type for f in dataclasses.fields(TrainingRecipe)}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"train-demo: --set {item}: unknown field; fields: {', '.join(types)}")
        recipe = dataclasses.replace(recipe, **{name: (float if types[name] == "float" else int)(value)})
    return recipe


def main(argv: list[str], root: Path) -> int:
    args = parse_args(argv, root)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if args.device == "cuda" and not cuda:
        print("train-demo: --device cuda asked for, but no CUDA device is available", file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    recipe = recipe_from_args(args)
    if args.refine_decoder is not None:
        if not args.refine_decoder.is_file():
            print(f"train-demo: --refine-decoder {args.refine_decoder}: no such file", file=sys.stderr)
            return 2
        print(f"Refining the decoder of {args.refine_decoder} on {device} ({recipe.decoder_steps} steps)", flush=True)
        summary = refine_checkpoint_decoder(args.refine_decoder, recipe, args.out, device)
        print(f"Wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
        print(json.dumps(summary, indent=2))
        return 0
    print(f"Training the demo model on {device} ({recipe.vae_steps} autoencoder steps, "
          f"{recipe.unet_steps} UNet steps, {recipe.decoder_steps} decoder steps); samples in {args.samples_dir}", flush=True)
    summary = train(recipe, args.out, args.samples_dir, device)
    print(f"Wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) in {summary['total_minutes']:.1f} min")
    print(json.dumps(summary, indent=2))
    return 0
