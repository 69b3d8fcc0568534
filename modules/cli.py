"""Command-line generation with the original CompVis ``scripts/txt2img.py`` / ``img2img.py`` flags.

    python launch.py txt2img --prompt "a red circle" --n_samples 2 --n_iter 1
    python launch.py img2img --init-img in.png --strength 0.6 --prompt "..."

Defaults are CompVis's (DDIM, 50 steps, scale 7.5, 2 iterations of 3 samples,
512x512 unless the model's native size says otherwise), except that every
image gets its own seed (seed + i, so any image can be regenerated alone) and
carries its infotext. ``--fixed_code`` reuses the same seeds, hence the same
starting noise, for every iteration, as the original's fixed start code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from modules.config import parse_config
from modules.infotext.files import next_file_number, save_image
from modules.params import Img2ImgParams, ParamsError, Txt2ImgParams
from modules.jobs import Job
from modules.models.safe_load import declared_resolution
from modules.pipeline.generate import GeneratedImage, generate_txt2img
from modules.pipeline.grid import image_grid
from modules.pipeline.img2img import generate_img2img
from modules.runtime import Runtime
from modules.sampling.catalog import resolve_sampler


REFUSED = {
    "--laion400m": "the LAION-400M model is not supported: put its checkpoint in models/Stable-diffusion or pass --ckpt",
    "--config": "model configs are not needed: the layout is detected from the checkpoint's keys and shapes",
}


def build_parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"launch.py {kind}", description=f"{kind} with the CompVis flags")
    parser.add_argument("--prompt", default="a painting of a virus monster playing guitar")
    parser.add_argument("--outdir", type=Path, default=Path("outputs") / f"{kind}-samples")
    parser.add_argument("--skip_grid", action="store_true", help="do not save a grid of each run")
    parser.add_argument("--skip_save", action="store_true", help="do not save the individual images")
    parser.add_argument("--ddim_steps", type=int, default=50, help="sampling steps")
    parser.add_argument("--plms", action="store_true", help="use the PLMS sampler")
    parser.add_argument("--fixed_code", action="store_true", help="the same starting noise for every iteration")
    parser.add_argument("--ddim_eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    parser.add_argument("--n_iter", type=int, default=2, help="iterations (batch count)")
    parser.add_argument("--C", type=int, default=None, help="latent channels (default and only choice: the model's)")
    parser.add_argument("--f", type=int, default=None, help="downsampling factor (default and only choice: the model's)")
    parser.add_argument("--n_samples", type=int, default=3, help="images per iteration (batch size)")
    parser.add_argument("--n_rows", type=int, default=0, help="grid rows (default: n_samples)")
    parser.add_argument("--scale", type=float, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--from-file", type=Path, default=None, help="one prompt per line")
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint file (default: the usual model folders)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("full", "autocast"), default="autocast")
    parser.add_argument("--sampler", default=None, help="any sampler name of the web UI (overrides --plms)")
    parser.add_argument("--scheduler", default="Automatic", help="any schedule type of the web UI")
    if kind == "txt2img":
        parser.add_argument("--H", type=int, default=None, help="image height (default: 512 or the model's native size)")
        parser.add_argument("--W", type=int, default=None, help="image width (default: 512 or the model's native size)")
    else:
        parser.add_argument("--init-img", type=Path, required=True, help="the image to start from")
        parser.add_argument("--strength", type=float, default=0.75, help="denoising strength: 0 keeps, 1 replaces")
    return parser


def refused_flag(argv: list[str]) -> str | None:
    for flag, reason in REFUSED.items():
        if any(arg == flag or arg.startswith(flag + "=") for arg in argv):
            return f"{flag}: {reason}"
    return None


def sampler_of(args: argparse.Namespace) -> str:
    """--sampler (any web UI name), else PLMS with --plms, else DDIM as CompVis."""
    if args.sampler:
        return resolve_sampler(args.sampler)[0].name
    return "PLMS" if args.plms else "DDIM"


class ConsoleJob(Job):
    """A job whose progress is drawn as a bar on stderr."""

    def __init__(self, label: str):
        super().__init__(label, lambda job: None)

    def report(self, **changes: object) -> None:
        super().report(**changes)
        p = self.progress
        if p.total_steps:
            bar = "#" * (30 * p.step // p.total_steps)
            end = "\n" if p.step == p.total_steps else ""
            print(f"\r{self.id} {p.image + 1}/{p.images} [{bar:<30}] {p.step}/{p.total_steps}", end=end,
                  file=sys.stderr, flush=True)


def prompts_of(args: argparse.Namespace) -> list[str]:
    if args.from_file is None:
        return [args.prompt]
    lines = [line.strip() for line in args.from_file.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def save_run(args: argparse.Namespace, results: list[GeneratedImage]) -> list[Path]:
    saved: list[Path] = []
    samples = args.outdir / "samples"
    if not args.skip_save:
        for result in results:
            path = samples / f"{next_file_number(samples):05d}-{result.seed}.png"
            save_image(result.image, path, result.infotext)
            saved.append(path)
    if not args.skip_grid and results:
        count = len(list(args.outdir.glob("grid-*.png"))) if args.outdir.is_dir() else 0
        path = args.outdir / f"grid-{count:04d}.png"
        save_image(image_grid([r.image for r in results], args.n_rows or args.n_samples), path, results[0].infotext)
        saved.append(path)
    return saved


def txt2img_params(args: argparse.Namespace, prompt: str, size: tuple[int, int], seed: int) -> Txt2ImgParams:
    sampler = sampler_of(args)
    knobs = (("eta", args.ddim_eta),) if sampler == "DDIM" and args.ddim_eta else ()
    return Txt2ImgParams(
        prompt=prompt, sampler_name=sampler, scheduler=args.scheduler, steps=args.ddim_steps, cfg_scale=args.scale,
        width=size[0], height=size[1], batch_size=args.n_samples, n_iter=1, seed=seed, sampler_knobs=knobs,
    ).validate()


def run(kind: str, argv: list[str], root: Path) -> int:
    refused = refused_flag(argv)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    args = build_parser(kind).parse_args(argv)
    model = Runtime(parse_config(_runtime_flags(args), root)).acquire_model()
    channels, factor = model.detected.vae.embed_dim, 2 ** (len(model.detected.vae.ch_mult) - 1)
    if args.C not in (None, channels) or args.f not in (None, factor):
        print(f"error: --C/--f must match the model ({channels} latent channels, factor {factor})", file=sys.stderr)
        return 2
    try:
        make = txt2img_maker(args, model) if kind == "txt2img" else img2img_maker(args)
        for prompt in prompts_of(args):
            for iteration in range(args.n_iter):
                seed = args.seed if args.fixed_code else args.seed + iteration * args.n_samples
                job = ConsoleJob(f"iteration {iteration + 1}/{args.n_iter}")
                for path in save_run(args, make(model, prompt, seed, job)):
                    print(path)
    except (ParamsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def txt2img_maker(args: argparse.Namespace, model):
    default = declared_resolution(model.checkpoint.path) or (512, 512)
    size = (args.W or default[0], args.H or default[1])
    return lambda model, prompt, seed, job: generate_txt2img(model, txt2img_params(args, prompt, size, seed), None, job)


def img2img_maker(args: argparse.Namespace):
    """CompVis img2img keeps the init image's size, rounded down to a multiple of 8 here (32 there)."""
    with Image.open(args.init_img) as opened:
        init = opened.convert("RGB")
    size = (init.width // 8 * 8, init.height // 8 * 8)

    def make(model, prompt: str, seed: int, job: Job) -> list[GeneratedImage]:
        base = txt2img_params(args, prompt, size, seed)
        params = Img2ImgParams(**{**base.__dict__, "init_images": (init,), "denoising_strength": args.strength})
        return generate_img2img(model, params.validate(), None, job)
    return make


def _runtime_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--ckpt", str(args.ckpt)] if args.ckpt else []
    return flags + (["--precision", "full"] if args.precision == "full" else [])
