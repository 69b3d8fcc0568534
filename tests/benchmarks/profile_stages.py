"""Where the CPU time goes: the bundled 20-step txt2img by stage, and one SD1.5-architecture
UNet step by kind of operation, eager PyTorch against OpenVINO.

    venv/bin/python tests/benchmarks/profile_stages.py [--repeats 5] [--skip-unet] [--skip-txt2img]

Part 1 times each stage of ``generate_txt2img`` on the bundled model (text encoder,
UNet calls, the rest of the sampling loop: sampler arithmetic, CFG batching and
Python, VAE decode, and what is left: seeds, infotext, PIL) for eager and OpenVINO,
and the same stages of a diffusers pipeline on the same weights (forward hooks).
Part 2 profiles one UNet step at batch 2, latent 32: torch.profiler self time by
operator for eager, OpenVINO's per-node performance counters for the converted
model, both grouped into convolutions, matrix products, attention, normalisation
and element-wise work. Medians over repetitions; prints markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from modules.config import DeviceFlags  # noqa: E402
from modules.device.policy import choose_device_policy  # noqa: E402
from modules.device.runners import ModelRunners, Notices, build_runners  # noqa: E402
from modules.models.files import CheckpointFile  # noqa: E402
from modules.models.load import load_model  # noqa: E402
from modules.params import Txt2ImgParams  # noqa: E402
from modules.pipeline.generate import generate_txt2img  # noqa: E402
from modules.pipeline.sampling_run import (  # noqa: E402
    SamplingChoice, latents_to_images, sample_txt2img_latents, vae_factor,
)
from modules.sampling.noise import NoiseSpec  # noqa: E402


class Stopwatch:
    """Seconds spent inside wrapped calls, per stage."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[stage] += time.perf_counter() - start
        return timed

    def _add(self, stage: str, start: float) -> None:
        self.spent[stage] += time.perf_counter() - start


def stage_medians(run: Callable[[Stopwatch], None], repeats: int) -> dict[str, float]:
    """Per stage, the median over repetitions (one warm-up first); "total" is the whole call."""
    samples: dict[str, list[float]] = defaultdict(list)
    with torch.inference_mode():
        run(Stopwatch())
        for _ in range(repeats):
            watch = Stopwatch()
            start = time.perf_counter()
            run(watch)
            samples["total"].append(time.perf_counter() - start)
            for stage, seconds in watch.spent.items():
                samples[stage].append(seconds)
    return {stage: statistics.median(values) for stage, values in samples.items()}


def print_stages(name: str, stages: dict[str, float]) -> None:
    total = stages["total"]
    inside = {k: v for k, v in stages.items() if k not in ("total", "sampling loop", "decode and to PIL")}
    if "sampling loop" in stages:
        # The sampling-loop call encodes the prompts too (text conditioning is built inside it).
        loop = stages["sampling loop"] - stages["UNet"] - stages["text encoder"]
        inside["sampler, CFG batching, noise, Python (loop minus UNet)"] = loop
        inside["latents to PIL images"] = stages["decode and to PIL"] - stages["VAE decode"]
    else:
        inside["scheduler, CFG, Python, rest"] = total - sum(inside.values())
    print(f"\n{name}: total {total * 1000:.1f} ms\n\n| stage | ms | share |\n| --- | --- | --- |")
    for stage, seconds in inside.items():
        print(f"| {stage} | {seconds * 1000:.1f} | {seconds / total:.0%} |")


def profile_txt2img(repeats: int) -> None:
    from tests.benchmarks.bench_all import bundled_diffusers_pipeline

    path = ROOT / "models" / "Stable-diffusion" / "shapes-demo.safetensors"
    model = load_model(CheckpointFile.from_file(path, path.name, "b" * 64), None,
                       choose_device_policy(DeviceFlags(), cuda_available=False))
    params = Txt2ImgParams(prompt="a yellow star on a purple background", negative_prompt="", sampler_name="Euler a",
                           steps=20, width=64, height=64, seed=1, cfg_scale=7.0)
    print(f"Bundled model, txt2img 20 steps Euler a, 64x64, CFG 7, CPU, {torch.get_num_threads()} threads")
    factor = vae_factor(model)
    spec = NoiseSpec(seeds=(1,), latent_shape=(4, 64 // factor, 64 // factor))
    choice = SamplingChoice(sampler_name="Euler a", steps=20, cfg_scale=7.0)
    with tempfile.TemporaryDirectory() as cache:
        for backend in ("torch", "openvino"):
            runners = build_runners(model.unet, model.vae, backend, f"profile-{backend}", Path(cache),
                                    Notices(lambda _: None), text_encoder=model.text_encoder)
            fast = dataclasses.replace(model, runners=runners)

            def stages(watch: Stopwatch, runners: ModelRunners = runners) -> None:
                timed = dataclasses.replace(model, runners=ModelRunners(
                    backend, watch.wrap("UNet", runners.unet), watch.wrap("VAE decode", runners.vae_decode),
                    runners.vae_encode, watch.wrap("text encoder", runners.text_encode or model.text_encoder.encode)))
                latents = watch.wrap("sampling loop", sample_txt2img_latents)(timed, [params.prompt], [""], spec, choice)
                watch.wrap("decode and to PIL", latents_to_images)(timed, latents)

            measured = stage_medians(stages, repeats)
            whole = stage_medians(lambda _watch, m=fast: generate_txt2img(m, params, None), repeats)["total"]
            measured["rest of generate_txt2img (seeds, infotext, image objects)"] = whole - measured["total"]
            measured["total"] = whole
            print_stages(f"ours, {backend}", measured)

    pipeline = bundled_diffusers_pipeline(path, model.tokenizer)

    current = [Stopwatch()]  # the repetition's stopwatch, which the hooks add to
    for stage, module in (("UNet", pipeline.unet), ("text encoder", pipeline.text_encoder),
                          ("VAE decode", pipeline.vae.decoder)):
        starts: list[float] = []
        module.register_forward_pre_hook(lambda *_, s=starts: s.append(time.perf_counter()))
        module.register_forward_hook(lambda *_, s=starts, st=stage: current[0]._add(st, s.pop()))

    def run_watched(watch: Stopwatch) -> None:
        current[0] = watch
        pipeline("a yellow star on a purple background", height=64, width=64, num_inference_steps=20,
                 guidance_scale=7.0, generator=torch.Generator().manual_seed(1))

    print_stages("diffusers StableDiffusionPipeline, same weights", stage_medians(run_watched, repeats))


CATEGORIES = (
    ("convolution", ("conv",)),
    ("attention (SDPA / softmax)", ("scaled_dot_product", "attention", "softmax", "sdpa")),
    ("matrix products", ("addmm", "bmm", "matmul", "linear", "::mm", "fullyconnected", "gemm")),
    ("normalisation", ("norm", "mvn")),
)


def category(name: str) -> str:
    lowered = name.lower()
    for label, keys in CATEGORIES:
        if any(key in lowered for key in keys):
            return label
    return "element-wise, reshape, copies, other"


def print_categories(title: str, times: dict[str, float], wall: float) -> None:
    total = sum(times.values())
    print(f"\n{title}: wall {wall * 1000:.0f} ms per step\n\n| kind | ms | share |\n| --- | --- | --- |")
    for label, seconds in sorted(times.items(), key=lambda item: -item[1]):
        print(f"| {label} | {seconds * 1000:.0f} | {seconds / total:.0%} |")


def profile_unet(repeats: int) -> None:
    import openvino as ov

    from modules.device.openvino_backend import OpenVINOCompiler
    from tests.benchmarks.bench_unet import build_unets

    ours, theirs = build_unets(torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(0)
    x, context = torch.randn(2, 4, 32, 32, generator=generator), torch.randn(2, 77, 768, generator=generator)
    t = torch.tensor([500.0, 500.0])
    print(f"\nSD1.5-architecture UNet step, batch 2, latent 32, fp32, CPU, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as cache:
        compiler = OpenVINOCompiler(Path(cache), say=lambda _: None)
        plain = compiler.compile(ours, (x, t, context), "profile", "unet")  # converts and saves
        # Wall times interleaved (eager, OpenVINO, eager, ...) so that load from other processes
        # on a shared machine falls on both alike.
        nets = {"eager": lambda: ours(x, t, context), "openvino": lambda: plain(x, t, context),
                "diffusers": lambda: theirs(x, t, encoder_hidden_states=context)}
        walls: dict[str, list[float]] = {name: [] for name in nets}
        with torch.inference_mode():
            for net in nets.values():
                net()
            for _ in range(repeats):
                for name, net in nets.items():
                    start = time.perf_counter()
                    net()
                    walls[name].append(time.perf_counter() - start)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
                ours(x, t, context)
        eager: dict[str, float] = defaultdict(float)
        for event in profiler.key_averages():
            eager[category(event.key)] += event.self_cpu_time_total / 1e6
        print_categories("eager PyTorch (torch.profiler self time)", eager, statistics.median(walls["eager"]))
        model = ov.Core().read_model(str(next(Path(cache).glob("*.xml"))))
        counted = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
        request = counted.create_infer_request()
        request.infer([x.numpy(), t.numpy(), context.numpy()])
        request.infer([x.numpy(), t.numpy(), context.numpy()])
        nodes: dict[str, float] = defaultdict(float)
        for info in request.profiling_info:
            nodes[category(f"{info.node_type} {info.exec_type}")] += info.real_time.total_seconds()
    print_categories("OpenVINO (per-node performance counters; wall without counters)", nodes,
                     statistics.median(walls["openvino"]))
    wall = {name: statistics.median(times) for name, times in walls.items()}
    print(f"\nWall per step: eager {wall['eager']:.3f} s, OpenVINO {wall['openvino']:.3f} s, diffusers "
          f"{wall['diffusers']:.3f} s; OpenVINO / diffusers {wall['openvino'] / wall['diffusers']:.2f}, "
          f"OpenVINO / eager {wall['openvino'] / wall['eager']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-unet", action="store_true", help="only the bundled txt2img")
    parser.add_argument("--skip-txt2img", action="store_true", help="only the UNet step")
    args = parser.parse_args()
    if not args.skip_txt2img:
        profile_txt2img(args.repeats)
    if not args.skip_unet:
        profile_unet(max(args.repeats // 2, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
