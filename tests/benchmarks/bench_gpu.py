"""The GPU table: SD1.5 architecture at 512x512 (latent 64), fp16, ours vs diffusers, on one CUDA device.

    venv/bin/python tests/benchmarks/bench_gpu.py [--repeats 5] [--skip-compile] [--device cpu] [--only offload]

Rows (medians over interleaved repetitions, ratios from the same run):
- UNet step, batch 2 (CFG pair): ours eager / channels_last / torch.compile / CUDA graphs
  (torch.compile "reduce-overhead") vs diffusers' UNet2DConditionModel, same weights;
- 20-step sampling loop, batch 1 with CFG: ours (our sampler + CFG denoiser, UNet as above)
  vs diffusers' StableDiffusionPipeline (plain, fp16) in it/s, and peak VRAM of each;
- VAE decode 512x512 and 1024x1024 fp16: whole vs tiled, peak VRAM; max difference tiled vs whole;
- whole txt2img through our pipeline (text encoder, 20 steps, VAE decode) from a checkpoint file:
  peak VRAM and time with all nets resident, with --medvram and with --lowvram.
Attention is PyTorch SDPA in both (flash / memory-efficient kernels on CUDA, chosen by PyTorch).
Random weights (timings do not depend on them). Sized to finish in under 8 minutes on one GPU;
``--device cpu`` runs the same code paths on a tiny model, to check the script itself.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from modules.models.vae_tiling import VAETiling, tiled_decode  # noqa: E402
from modules.nets.unet import UNetModel  # noqa: E402
from modules.nets.vae import AutoencoderKL  # noqa: E402
from modules.sampling.denoiser import CFGDenoiser, DiscreteDenoiser  # noqa: E402
from modules.sampling.noise import ImageNoise, NoiseSpec  # noqa: E402
from modules.sampling.samplers import sample_euler_ancestral  # noqa: E402
from modules.sampling.schedules import scaled_linear_alphas_cumprod, sigmas_from_alphas_cumprod  # noqa: E402
from tests.models.family_configs import clip_l_text, sd15_configs, tiny_configs  # noqa: E402
from tests.nets.parity import Family, diffusers_text_encoder, diffusers_unet, diffusers_vae  # noqa: E402

ROWS: list[str] = []


def say(what: str, measured: str, ratio: float | None = None) -> None:
    line = f"| {what} | {measured} | {'' if ratio is None else f'{ratio:.2f}'} |"
    ROWS.append(line)
    print(line, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def medians(candidates: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    with torch.inference_mode():
        for fn in candidates.values():
            fn(), fn()  # warm-up (compile, graph capture, cuDNN autotune)
        for _ in range(repeats):
            for name, fn in candidates.items():
                sync(device)
                start = time.perf_counter()
                fn()
                sync(device)
                runs[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in runs.items()}


def peak_memory(fn: Callable[[], object], device: torch.device) -> float:
    """Peak allocated GiB during ``fn`` (CUDA), 0 on the CPU."""
    if device.type != "cuda":
        with torch.inference_mode():
            fn()
        return 0.0
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 1024**3


def bench_unet(family: Family, checkpoint, args, device, dtype, latent: int) -> UNetModel:
    prefix = "model.diffusion_model."
    ours = UNetModel(family.unet)
    ours.load_state_dict({k.removeprefix(prefix): v for k, v in checkpoint.items() if k.startswith(prefix)})
    ours = ours.to(device, dtype).eval().requires_grad_(False)
    theirs = diffusers_unet(family, checkpoint).to(device, dtype).requires_grad_(False)
    x = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
    context = torch.randn(2, 77, family.unet.context_dim, device=device, dtype=dtype)
    t = torch.tensor([500.0, 500.0], device=device)
    candidates: dict[str, Callable[[], object]] = {
        "diffusers": lambda: theirs(x, t, encoder_hidden_states=context),
        "ours eager": lambda: ours(x, t, context),
    }
    channels_last = UNetModel(family.unet).to(device, dtype).eval().requires_grad_(False)
    channels_last.load_state_dict(ours.state_dict())
    channels_last = channels_last.to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    candidates["ours channels_last"] = lambda: channels_last(x_last, t, context)
    if not args.skip_compile:
        compiled = torch.compile(ours, dynamic=False)
        candidates["ours torch.compile"] = lambda: compiled(x, t, context)
        if device.type == "cuda":
            graphed = torch.compile(ours, mode="reduce-overhead", dynamic=False)  # CUDA graphs, static shapes
            candidates["ours CUDA graphs"] = lambda: graphed(x, t, context)
    result = medians(candidates, args.repeats, device)
    for name, seconds in result.items():
        if name != "diffusers":
            say(f"UNet step batch 2 latent {latent}, {name}", f"{seconds * 1000:.1f} ms "
                f"(diffusers {result['diffusers'] * 1000:.1f} ms)", seconds / result["diffusers"])
    del theirs, channels_last
    return ours


def bench_sampling(family: Family, checkpoint, unet: UNetModel, args, device, dtype, latent: int) -> None:
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    from modules.nets.tokenizer import build_clip_tokenizer

    alphas = scaled_linear_alphas_cumprod().to(device)
    sigmas = sigmas_from_alphas_cumprod(alphas)
    ladder = torch.cat([sigmas.flip(0)[torch.linspace(0, 999, args.steps).round().long()], sigmas.new_zeros(1)])
    cond = torch.randn(1, 77, family.unet.context_dim, device=device, dtype=dtype)
    uncond = torch.randn(1, 77, family.unet.context_dim, device=device, dtype=dtype)
    inner = DiscreteDenoiser.from_alphas_cumprod(unet, alphas, "eps")
    denoiser = CFGDenoiser(inner, cond, uncond, 7.0, {})
    def ours() -> None:
        noise = ImageNoise(NoiseSpec(seeds=(1,), latent_shape=(4, latent, latent)), device=device, dtype=dtype)
        sample_euler_ancestral(denoiser, noise.initial_noise() * ladder[0], ladder, noise=noise)

    tokenizer: CLIPTokenizer = build_clip_tokenizer(pad_token_id=family.text.pad_token_id)
    pipeline = StableDiffusionPipeline(
        vae=diffusers_vae(family, checkpoint), text_encoder=diffusers_text_encoder(family, checkpoint),
        tokenizer=tokenizer, unet=diffusers_unet(family, checkpoint),
        scheduler=EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                  steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)

    def theirs() -> None:
        # The same text embeddings as ours: both sides time the sampling loop, not the text encoder.
        side = latent * 2 ** (len(family.vae.ch_mult) - 1)
        pipeline(prompt_embeds=cond, negative_prompt_embeds=uncond, height=side, width=side,
                 num_inference_steps=args.steps, guidance_scale=7.0, output_type="latent")

    result = medians({"diffusers": theirs, "ours": ours}, max(args.repeats // 2, 1), device)
    ours_its, theirs_its = args.steps / result["ours"], args.steps / result["diffusers"]
    say(f"{args.steps}-step sampling, latent {latent}x{latent}, CFG 7, it/s", f"ours {ours_its:.2f}, diffusers "
        f"{theirs_its:.2f} (target ours >= 1.5x)", ours_its / theirs_its)
    say("Peak VRAM, sampling loop", f"ours {peak_memory(ours, device):.2f} GiB (UNet only resident), "
        f"diffusers pipeline {peak_memory(theirs, device):.2f} GiB (all nets resident)")
    del pipeline


def bench_vae(family: Family, checkpoint, args, device, dtype) -> None:
    prefix = "first_stage_model."
    vae = AutoencoderKL(family.vae)
    vae.load_ldm_state_dict({k.removeprefix(prefix): v for k, v in checkpoint.items() if k.startswith(prefix)})
    vae = vae.to(device, dtype).eval().requires_grad_(False)
    factor = 2 ** (len(family.vae.ch_mult) - 1)
    for pixels in args.vae_sizes:
        side = pixels // factor
        latents = torch.nn.functional.interpolate(torch.randn(1, 4, 8, 8, device=device), size=(side, side),
                                                  mode="bilinear").to(dtype)
        tiling = VAETiling(mode="Always", tile=max(side // 2, 8), overlap=max(side // 8, 2))
        whole = lambda: vae.decode(latents)  # noqa: E731
        tiled = lambda: tiled_decode(vae.decode, latents, tiling, factor, net=vae)  # noqa: E731
        result = medians({"whole": whole, "tiled": tiled}, max(args.repeats // 2, 1), device)
        with torch.inference_mode():
            difference = float((tiled().float() - whole().float()).abs().max())
        say(f"VAE decode {pixels}x{pixels}, tiled vs whole", f"{result['tiled'] * 1000:.0f} ms vs "
            f"{result['whole'] * 1000:.0f} ms; peak {peak_memory(tiled, device):.2f} vs {peak_memory(whole, device):.2f} "
            f"GiB; max |tiled - whole| {difference:.3f} on [-1, 1]", result["tiled"] / result["whole"])


def bench_offload(family: Family, checkpoint, args, device) -> None:
    """Peak VRAM of one whole txt2img (weights included) with each placement: the issue's
    targets are <= 3.5 GiB resident, <= 2 GiB with --medvram."""
    import dataclasses
    import tempfile

    from safetensors.torch import save_file

    from modules.config import DeviceFlags
    from modules.device.policy import choose_device_policy
    from modules.models.files import CheckpointFile
    from modules.models.load import load_model
    from modules.pipeline.sampling_run import SamplingChoice, latents_to_images, sample_txt2img_latents

    latent, factor = (64 if device.type == "cuda" else 16), 2 ** (len(family.vae.ch_mult) - 1)
    targets = {"resident": " (target <= 3.5 GiB)", "medvram": " (target <= 2 GiB)", "lowvram": ""}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sd15-random.safetensors"
        save_file({k: v.half() if v.is_floating_point() else v for k, v in checkpoint.items()}, str(path))
        file = CheckpointFile.from_file(path, path.name, "0" * 64)
        for mode in ("resident", "medvram", "lowvram"):
            flags = DeviceFlags() if mode == "resident" else dataclasses.replace(DeviceFlags(), **{mode: True})
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            model = load_model(file, None, choose_device_policy(flags, cuda_available=device.type == "cuda"))
            spec = NoiseSpec(seeds=(1,), latent_shape=(4, latent, latent))
            sync(device)
            start = time.perf_counter()
            with torch.inference_mode():
                latents = sample_txt2img_latents(model, ["a photograph of a cat"], [""], spec,
                                                 SamplingChoice(sampler_name="Euler a", steps=args.steps))
                latents_to_images(model, latents)
            sync(device)
            seconds = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else 0.0
            say(f"txt2img {latent * factor}x{latent * factor}, {args.steps} steps, {mode}",
                f"peak VRAM {peak:.2f} GiB{targets[mode]}, {seconds:.1f} s")
            del model
            gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--vae-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--only", choices=("unet", "vae", "offload"), default=None,
                        help="one part of the table (unet: UNet step and sampling loop)")
    args = parser.parse_args()
    device = torch.device(args.device)
    started = time.perf_counter()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        family, dtype, latent = Family(*sd15_configs()), torch.float16, 64
        args.vae_sizes = args.vae_sizes or [512, 1024]
        print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, fp16", flush=True)
    else:
        unet_config, vae_config, _ = tiny_configs()
        family, dtype, latent = Family(unet_config, vae_config, clip_l_text(32, 2, 64)), torch.float32, 16
        args.vae_sizes = args.vae_sizes or [64, 128]
        print("CPU dry run on a tiny model (checks the script, measures nothing of interest)", flush=True)
    print("| what | measured | ratio |\n| --- | --- | --- |", flush=True)
    checkpoint = family.checkpoint(seed=0)
    if args.only in (None, "unet"):
        unet = bench_unet(family, checkpoint, args, device, dtype, latent)
        bench_sampling(family, checkpoint, unet, args, device, dtype, latent)
        del unet
        gc.collect()
    if args.only in (None, "vae"):
        bench_vae(family, checkpoint, args, device, dtype)
    if args.only in (None, "offload"):
        bench_offload(family, checkpoint, args, device)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
