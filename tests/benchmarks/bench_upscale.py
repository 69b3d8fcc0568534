"""Tiled against whole-image upscaling with a full-size ESRGAN (RRDBNet: 64 features, 23 blocks,
growth 32, 4x; random weights in the released key layout), on the CPU: wall time, peak RSS of a
fresh process per mode, and the largest pixel difference. Run: venv/bin/python tests/benchmarks/bench_upscale.py [size]"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def one_mode(model_path: str, size: int, tile: int, out_path: str) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from modules.upscalers.library import load_upscaler_model
    from modules.upscalers.tiling import upscale_with_net

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_upscaler_model(Path(model_path))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    start = time.perf_counter()
    result = upscale_with_net(model.net, image, model.architecture.scale, tile, 8)
    seconds = time.perf_counter() - start
    result.save(out_path)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tile": tile, "seconds": seconds, "peak_rss_mb": peak_mb}))


def main() -> None:
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from tests.upscalers.layouts import esrgan_new

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "esrgan-x4.safetensors"
        save_file(esrgan_new(nf=64, nb=23, gc=32, steps=2), str(model))
        runs = {}
        for tile in (0, size // 2):
            out = Path(folder) / f"out-{tile}.png"
            line = subprocess.run([sys.executable, __file__, "--one", str(model), str(size), str(tile), str(out)],
                                  cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            runs[tile] = (json.loads(line), np.asarray(Image.open(out), dtype=np.int16))
        whole, tiled = runs[0], runs[size // 2]
        print(f"ESRGAN 4x (64 features, 23 blocks), {size}x{size} -> {4 * size}x{4 * size} on the CPU")
        for name, (stats, _) in (("whole image", whole), (f"tiles of {size // 2}, overlap 8", tiled)):
            print(f"  {name:24s} {stats['seconds']:7.2f} s   peak RSS {stats['peak_rss_mb']:7.0f} MB")
        print(f"  max pixel difference tiled vs whole: {np.abs(whole[1] - tiled[1]).max()} of 255 "
              f"(mean {np.abs(whole[1] - tiled[1]).mean():.3f})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        sys.path.insert(0, str(ROOT))
        one_mode(*sys.argv[2:3], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        main()
