"""Benchmark: one SD1.5-architecture UNet forward, ours vs diffusers on identical weights,
plus a cold checkpoint load, a cached switch, and peak RSS.

    python tests/benchmarks/bench_unet.py [--sizes 32 64] [--repeats 3] [--skip-load]

Runs are interleaved (ours, theirs, ours, theirs, ...) in one process so both
see the same machine state; medians and the ratio ours/diffusers are printed.
fp32 on CPU; fp16 on CUDA when present. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from diffusers import UNet2DConditionModel  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402

from modules.nets.unet import UNetModel  # noqa: E402
from tests.nets.checkpoints import SD15_TEXT, SD15_UNET, SD15_VAE, ldm_yaml_config, make_ldm_checkpoint  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def build_unets(device: torch.device, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    checkpoint = make_ldm_checkpoint(SD15_UNET, SD15_VAE, SD15_TEXT, seed=0)
    prefix = "model.diffusion_model."
    unet_state = {k.removeprefix(prefix): v for k, v in checkpoint.items() if k.startswith(prefix)}
    with torch.device("meta"):
        ours = UNetModel(SD15_UNET)
    ours.load_state_dict(unet_state, strict=True, assign=True)
    config = sfu.create_unet_diffusers_config_from_ldm(ldm_yaml_config(SD15_UNET, SD15_VAE, SD15_TEXT), checkpoint)
    with torch.device("meta"):
        theirs = UNet2DConditionModel(**config)
    converted = {k: v.clone() for k, v in sfu.convert_ldm_unet_checkpoint(checkpoint, config).items()}
    theirs.load_state_dict(converted, strict=True, assign=True)
    del checkpoint, unet_state, converted
    gc.collect()
    return ours.to(device, dtype).eval(), theirs.to(device, dtype).eval()


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_unet_forward(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    ours, theirs = build_unets(device, dtype)
    print(f"UNet forward, SD1.5 architecture, batch 2, {dtype} on {device}, {torch.get_num_threads()} threads")
    compare(ours, theirs, args, device, dtype)
    del ours, theirs
    gc.collect()


def compare(ours, theirs, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    for size in args.sizes:
        x = torch.randn(2, 4, size, size, generator=generator).to(device, dtype)
        context = torch.randn(2, 77, 768, generator=generator).to(device, dtype)
        t = torch.tensor([500, 500], device=device)
        runs = {"ours": [], "diffusers": []}
        with torch.inference_mode():
            warm_up = [timed(lambda: ours(x, t, context), device),
                       timed(lambda: theirs(x, t, encoder_hidden_states=context), device)]
            for _ in range(args.repeats):
                runs["ours"].append(timed(lambda: ours(x, t, context), device))
                runs["diffusers"].append(timed(lambda: theirs(x, t, encoder_hidden_states=context), device))
        ours_median, theirs_median = statistics.median(runs["ours"]), statistics.median(runs["diffusers"])
        print(f"  latent {size}x{size}: ours {ours_median:.3f} s, diffusers {theirs_median:.3f} s, "
              f"ratio ours/diffusers {ours_median / theirs_median:.3f}  (median of {args.repeats}; "
              f"first calls {warm_up[0]:.1f} s / {warm_up[1]:.1f} s)")


def bench_load_and_switch(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    from modules.config import parse_config
    from modules.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models" / "Stable-diffusion"
        folder.mkdir(parents=True)
        for seed, name in ((1, "first"), (2, "second")):
            state = {k: v.half() for k, v in make_ldm_checkpoint(SD15_UNET, SD15_VAE, SD15_TEXT, seed=seed).items()}
            save_file(state, str(folder / f"{name}.safetensors"))
            del state
            gc.collect()
        runtime = Runtime(parse_config(["--data-dir", tmp], ROOT))
        runtime.update_options({"sd_checkpoints_limit": 2})
        runtime.checkpoints()  # hashing is a one-time cost per file, cached on disk: not part of a load
        cold = timed(lambda: runtime.set_default_checkpoint("first"), torch.device("cpu"))
        runtime.set_default_checkpoint("second")
        switches = [timed(lambda: runtime.set_default_checkpoint(name), torch.device("cpu"))
                    for name in ("first", "second") * 3]
        print(f"Checkpoint (full SD1.5, fp16 safetensors): cold load {cold:.2f} s, "
              f"cached switch median {statistics.median(switches) * 1000:.1f} ms (target <= 300 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true", help="skip the load/switch timing")
    args = parser.parse_args()
    bench_unet_forward(args)
    if not args.skip_load:
        bench_load_and_switch(args)
    print(f"Peak RSS: {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
