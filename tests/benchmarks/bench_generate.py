"""Benchmark: a whole txt2img generation (prompt to decoded image) on a tiny SD1-layout model.

    venv/bin/python tests/benchmarks/bench_generate.py [--steps 20] [--size 64]

Prints the median of 3 runs per sampler (after one warm-up). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from safetensors.torch import save_file  # noqa: E402

from modules.config import DeviceFlags  # noqa: E402
from modules.device.policy import choose_device_policy, probe_cuda  # noqa: E402
from modules.models.files import CheckpointFile  # noqa: E402
from modules.models.load import load_model  # noqa: E402
from modules.params import Txt2ImgParams  # noqa: E402
from modules.pipeline.generate import generate_txt2img  # noqa: E402
from tests.models.family_configs import clip_l_text, tiny_configs  # noqa: E402
from tests.nets.checkpoints import make_ldm_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--samplers", nargs="+", default=["Euler a", "DPM++ 2M", "DPM++ SDE"])
    args = parser.parse_args()
    unet, vae, _ = tiny_configs()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.safetensors"
        save_file(make_ldm_checkpoint(unet, vae, clip_l_text(32, 2, 64)), str(path))
        policy = choose_device_policy(DeviceFlags(), probe_cuda())
        model = load_model(CheckpointFile.from_file(path, path.name, "0" * 64), None, policy)
    for sampler in args.samplers:
        params = Txt2ImgParams(prompt="a yellow star on a purple background", sampler_name=sampler,
                               steps=args.steps, width=args.size, height=args.size, seed=1)
        generate_txt2img(model, params, None)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            generate_txt2img(model, params, None)
            times.append(time.perf_counter() - started)
        print(f"{sampler}: {args.steps} steps, {args.size}x{args.size}, CFG 7, tiny SD1-layout model on "
              f"{policy.device}: median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
