"""The performance table in one run: `python launch.py bench [--only unet txt2img vae load start] ...`.

Prints a markdown table (medians over interleaved repetitions, ratios computed
in the same run, so both sides of a ratio saw the same machine state):

- UNet step, SD1.5 architecture, batch 2, latent 32 and 64: ours eager / OpenVINO / torch.compile
  vs diffusers' UNet2DConditionModel on identical (random) weights;
- 20-step txt2img on the bundled model: ours per backend vs a diffusers StableDiffusionPipeline
  on the same weights (Euler a, CFG 7), prompt to decoded image;
- VAE decode of 512x512 and 1024x1024 (SD1.5 architecture): whole vs tiled, peak memory;
- cold checkpoint load and cached switch (full-size SD1.5 files);
- server start to first page; peak RSS of this process.

Conversion and compile times are printed as first-call costs, not mixed into medians.
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from modules.device.openvino_backend import ModuleCall, OpenVINOCompiler  # noqa: E402
from modules.device.runners import Notices, build_runners  # noqa: E402

SECTIONS = ("unet", "txt2img", "vae", "load", "start")
ROWS: list[tuple[str, str, str, str]] = []  # what, measured, reference, ratio


def row(what: str, measured: str, reference: str = "", ratio: float | None = None) -> None:
    ROWS.append((what, measured, reference, "" if ratio is None else f"{ratio:.2f}"))
    print(f"  {what}: {measured} {reference} {'' if ratio is None else f'ratio {ratio:.2f}'}", flush=True)


def timed(fn: Callable[[], object], cuda: bool = False) -> float:
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per candidate; one warm-up call each, then rounds of one call per candidate."""
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    with torch.inference_mode():
        for fn in candidates.values():
            fn()
        for _ in range(repeats):
            for name, fn in candidates.items():
                runs[name].append(timed(fn))
    return {name: statistics.median(times) for name, times in runs.items()}


def first_call(fn: Callable[[], object]) -> float:
    with torch.inference_mode():
        return timed(fn)


# ----- UNet step -----
def bench_unet(args: argparse.Namespace, cache: Path) -> None:
    from tests.benchmarks.bench_unet import build_unets

    ours, theirs = build_unets(torch.device("cpu"), torch.float32)
    print(f"UNet step, SD1.5 architecture, batch 2, fp32, CPU, {torch.get_num_threads()} threads", flush=True)
    for size in args.sizes:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, size, size, generator=generator)
        context = torch.randn(2, 77, 768, generator=generator)
        t = torch.tensor([500.0, 500.0])
        candidates: dict[str, Callable[[], object]] = {
            "eager": lambda: ours(x, t, context),
            "diffusers": lambda: theirs(x, t, encoder_hidden_states=context),
        }
        if "openvino" in args.backends:
            compiler = OpenVINOCompiler(cache)
            convert = first_call(lambda: compiler.compile(ours, (x, t, context), f"bench{size}", "unet"))
            compiled = compiler.compile(ours, (x, t, context), f"bench{size}", "unet")  # from the disk cache
            cached = first_call(lambda: OpenVINOCompiler(cache).compile(ours, (x, t, context), f"bench{size}", "unet"))
            with torch.inference_mode():
                error = float((compiled(x, t, context) - ours(x, t, context)).abs().max() / ours(x, t, context).abs().max())
            row(f"UNet latent {size}: OpenVINO first use", f"convert+compile {convert:.1f} s, "
                f"from disk cache {cached:.1f} s, max rel. diff vs eager {error:.1e}")
            candidates["openvino"] = lambda: compiled(x, t, context)
        if "compile" in args.backends:
            compiled_module = torch.compile(ours, dynamic=False)
            row(f"UNet latent {size}: torch.compile first call", f"{first_call(lambda: compiled_module(x, t, context)):.1f} s")
            candidates["compile"] = lambda: compiled_module(x, t, context)
        medians = interleaved(candidates, args.repeats)
        for name in candidates:
            if name != "diffusers":
                row(f"UNet step latent {size}, ours {name}", f"{medians[name]:.3f} s",
                    f"diffusers {medians['diffusers']:.3f} s", medians[name] / medians["diffusers"])
    del ours, theirs
    gc.collect()


# ----- 20-step txt2img on the bundled model -----
def bundled_diffusers_pipeline(path: Path, tokenizer):
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    from modules.demo.model import DEMO_TEXT, DEMO_UNET, DEMO_VAE
    from modules.models.safe_load import load_state_dict
    from tests.nets.parity import Family, diffusers_text_encoder, diffusers_unet, diffusers_vae

    state = {k: v.float() for k, v in load_state_dict(path).items()}
    family = Family(DEMO_UNET, DEMO_VAE, DEMO_TEXT)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                num_train_timesteps=1000, steps_offset=1)
    pipeline = StableDiffusionPipeline(
        vae=diffusers_vae(family, state), text_encoder=diffusers_text_encoder(family, state), tokenizer=tokenizer,
        unet=diffusers_unet(family, state), scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    ).to("cpu")
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def bench_txt2img(args: argparse.Namespace, cache: Path) -> None:
    import dataclasses

    from modules.config import DeviceFlags
    from modules.device.policy import choose_device_policy
    from modules.models.files import CheckpointFile
    from modules.models.load import load_model
    from modules.params import Txt2ImgParams
    from modules.pipeline.generate import generate_txt2img

    path = ROOT / "models" / "Stable-diffusion" / "shapes-demo.safetensors"
    model = load_model(CheckpointFile.from_file(path, path.name, "b" * 64), None,
                       choose_device_policy(DeviceFlags(), cuda_available=False))
    size = 64
    params = Txt2ImgParams(prompt="a yellow star on a purple background", negative_prompt="", sampler_name="Euler a",
                           steps=20, width=size, height=size, seed=1, cfg_scale=7.0)
    pipeline = bundled_diffusers_pipeline(path, model.tokenizer)
    print(f"txt2img, bundled model, 20 steps Euler a, {size}x{size}, CFG 7, CPU", flush=True)
    candidates: dict[str, Callable[[], object]] = {
        "diffusers": lambda: pipeline("a yellow star on a purple background", height=size, width=size,
                                      num_inference_steps=20, guidance_scale=7.0,
                                      generator=torch.Generator().manual_seed(1)),
        "eager": lambda: generate_txt2img(model, params, None),
    }
    for backend in (b for b in args.backends if b != "torch"):
        runners = build_runners(model.unet, model.vae, backend, f"bundled-{backend}", cache, Notices(),
                                text_encoder=model.text_encoder)
        fast = dataclasses.replace(model, runners=runners)
        row(f"txt2img ours {backend}: first generation (conversion included)",
            f"{first_call(lambda: generate_txt2img(fast, params, None)):.1f} s")
        candidates[backend] = (lambda m: lambda: generate_txt2img(m, params, None))(fast)
    medians = interleaved(candidates, args.repeats)
    for name in candidates:
        if name != "diffusers":
            row(f"txt2img 20 steps, ours {name}", f"{medians[name]:.3f} s",
                f"diffusers pipeline {medians['diffusers']:.3f} s", medians[name] / medians["diffusers"])


# ----- VAE decode -----
def peak_rss_during(fn: Callable[[], object]) -> tuple[float, float]:
    """(seconds, peak RSS above the level before the call, GiB), RSS sampled every 5 ms."""
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    gc.collect()
    base, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with torch.inference_mode():
        seconds = timed(fn)
    done.set()
    sampler.join()
    return seconds, max(peak[0] - base, 0) / 1024**3


def bench_vae(args: argparse.Namespace, cache: Path) -> None:
    from modules.models.vae_tiling import VAETiling, tiled_decode
    from modules.nets.vae import AutoencoderKL
    from tests.nets.checkpoints import SD15_VAE

    torch.manual_seed(0)
    vae = AutoencoderKL(SD15_VAE).eval().requires_grad_(False)
    tiling = VAETiling(mode="Always")
    print("VAE decode, SD1.5 architecture (random weights), batch 1, fp32, CPU", flush=True)
    for pixels in args.vae_sizes:
        latents = torch.nn.functional.interpolate(torch.randn(1, 4, 8, 8), size=(pixels // 8, pixels // 8), mode="bilinear")
        full_s, full_mem = peak_rss_during(lambda: vae.decode(latents))
        tiled_s, tiled_mem = peak_rss_during(lambda: tiled_decode(vae.decode, latents, tiling, 8, net=vae))
        row(f"VAE decode {pixels}x{pixels} whole", f"{full_s:.2f} s, peak +{full_mem:.2f} GiB")
        row(f"VAE decode {pixels}x{pixels} tiled (512px tiles)", f"{tiled_s:.2f} s, peak +{tiled_mem:.2f} GiB",
            "vs whole", tiled_s / full_s)


# ----- cold load, cached switch -----
def bench_load(args: argparse.Namespace, cache: Path) -> None:
    from safetensors.torch import save_file

    from modules.config import parse_config
    from modules.runtime import Runtime
    from tests.nets.checkpoints import SD15_TEXT, SD15_UNET, SD15_VAE, make_ldm_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models" / "Stable-diffusion"
        folder.mkdir(parents=True)
        for seed, name in ((1, "first"), (2, "second")):
            state = {k: v.half() for k, v in make_ldm_checkpoint(SD15_UNET, SD15_VAE, SD15_TEXT, seed=seed).items()}
            save_file(state, str(folder / f"{name}.safetensors"))
            del state
            gc.collect()
        runtime = Runtime(parse_config(["--data-dir", tmp, "--backend", "torch"], ROOT))
        runtime.update_options({"sd_checkpoints_limit": 2})
        for file in runtime.checkpoints():
            runtime.hashed(file)  # hashing is once per file, cached on disk: not part of a load
        cold = timed(lambda: runtime.set_default_checkpoint("first"))
        runtime.set_default_checkpoint("second")
        switches = [timed(lambda: runtime.set_default_checkpoint(name)) for name in ("first", "second") * 3]
        row("Checkpoint cold load (SD1.5, fp16 safetensors)", f"{cold:.2f} s")
        row("Cached checkpoint switch", f"{statistics.median(switches) * 1000:.1f} ms", "target 300 ms",
            statistics.median(switches) / 0.3)
        del runtime
        gc.collect()


# ----- server start to first page -----
def bench_start(args: argparse.Namespace, cache: Path) -> None:
    port = 7890
    times = []
    for _ in range(args.start_repeats):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            server = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "--skip-install", "--port", str(port),
                                       "--data-dir", tmp, "--ckpt-dir", str(ROOT / "models" / "Stable-diffusion")],
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                while time.perf_counter() - started < 120:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                            if response.status == 200:
                                times.append(time.perf_counter() - started)
                                break
                    except OSError:
                        time.sleep(0.05)
            finally:
                server.terminate()
                server.wait(30)
    if times:
        median = statistics.median(times)
        row("Server start to first page", f"{median:.2f} s (median of {len(times)})", "target 5 s", median / 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="UNet latent sizes")
    parser.add_argument("--vae-sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--backends", nargs="+", choices=("openvino", "compile"), default=["openvino", "compile"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--start-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    benches = {"unet": bench_unet, "txt2img": bench_txt2img, "vae": bench_vae, "load": bench_load, "start": bench_start}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        for name in args.only:
            benches[name](args, Path(cache))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "CPU")
    print(f"\n{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {time.perf_counter() - started:.0f} s in all\n")
    print("| what | measured | reference | ratio |\n| --- | --- | --- | --- |")
    for what, measured, reference, ratio in ROWS:
        print(f"| {what} | {measured} | {reference} | {ratio} |")
    print(f"| Peak RSS of the benchmark process | {peak:.2f} GiB | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
