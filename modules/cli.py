"""Command-line generation with the original CompVis ``scripts/txt2img.py`` / ``img2img.py`` flags.

    python launch.py txt2img --prompt "a red circle" --n_samples 2 --n_iter 1
    python launch.py img2img --init-img in.png --strength 0.6 --prompt "..."

Defaults are CompVis's (DDIM, 50 steps, scale 7.5, 2 iterations of 3 samples,
512x512 unless the model's native size says otherwise), except that every
image gets its own seed (seed + i, so any image can be regenerated alone) and
carries its infotext. ``--fixed_code`` reuses the same seeds, hence the same
starting noise, for every iteration, as the original's fixed start code.

Each iteration is one job through the same path as the page and the API
(``job_params`` then ``Runtime.submit``): styles (``--style``), LoRA tags and
embeddings in the prompt, the settings in config.json (clip skip, ENSD, eta, ...),
the always-on scripts and the job queue. Without ``--outdir`` the images are saved
as the saving settings say, as the web UI saves them; with it, in CompVis's layout
(``samples/00000-<seed>.png`` and ``grid-0000.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from PIL import Image

from modules.config import parse_config
from modules.infotext.files import next_file_number, save_image
from modules.job_spec import job_params
from modules.jobs import Job
from modules.models.safe_load import declared_resolution
from modules.params import Img2ImgParams, ParamsError
from modules.pipeline.generate import GeneratedImage, SaveOptions
from modules.pipeline.grid import image_grid
from modules.runtime import Runtime, save_options_from
from modules.sampling.catalog import resolve_sampler


REFUSED = {
    "--laion400m": "the LAION-400M model is not supported: put its checkpoint in models/Stable-diffusion or pass --ckpt",
    "--config": "model configs are not needed: the layout is detected from the checkpoint's keys and shapes",
}


def build_parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"launch.py {kind}", description=f"{kind} with the CompVis flags")
    parser.add_argument("--prompt", default="a painting of a virus monster playing guitar")
    parser.add_argument("--outdir", type=Path, default=None,
                        help="save in CompVis's layout here (default: where the web UI's saving settings say)")
    parser.add_argument("--skip_grid", action="store_true", help="do not save a grid of each run")
    parser.add_argument("--skip_save", action="store_true", help="do not save the individual images")
    parser.add_argument("--ddim_steps", type=int, default=50, help="sampling steps")
    parser.add_argument("--plms", action="store_true", help="use the PLMS sampler")
    parser.add_argument("--fixed_code", action="store_true", help="the same starting noise for every iteration")
    parser.add_argument("--ddim_eta", type=float, default=None, help="DDIM eta (default: the eta setting, 0 for DDIM)")
    parser.add_argument("--n_iter", type=int, default=2, help="iterations (batch count)")
    parser.add_argument("--C", type=int, default=None, help="latent channels (default and only choice: the model's)")
    parser.add_argument("--f", type=int, default=None, help="downsampling factor (default and only choice: the model's)")
    parser.add_argument("--n_samples", type=int, default=3, help="images per iteration (batch size)")
    parser.add_argument("--n_rows", type=int, default=0, help="grid rows (default: n_samples)")
    parser.add_argument("--scale", type=float, default=7.5, help="classifier-free guidance scale")
    parser.add_argument("--from-file", type=Path, default=None, help="one prompt per line")
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint file (default: the usual model folders)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the web UI's data dir: its settings, styles, models and outputs (default: this folder)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("full", "autocast"), default="autocast")
    parser.add_argument("--sampler", default=None, help="any sampler name of the web UI (overrides --plms)")
    parser.add_argument("--scheduler", default="Automatic", help="any schedule type of the web UI")
    parser.add_argument("--style", action="append", default=[], help="a style from styles.csv (repeatable)")
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


def follow(job: Job, poll_seconds: float = 0.1) -> list[GeneratedImage]:
    """The job's images, drawing its progress as a bar on stderr while it runs; Ctrl-C interrupts it
    (the images finished so far are kept)."""
    try:
        while True:
            try:
                return job.future.result(timeout=poll_seconds)
            except FutureTimeout:
                draw_progress(job)
    except KeyboardInterrupt:
        job.interrupt()
        return job.future.result()


def draw_progress(job: Job) -> None:
    p = job.progress
    if p.total_steps:
        bar = "#" * (30 * p.step // p.total_steps)
        print(f"\r{job.id} {p.image + 1}/{p.images} [{bar:<30}] {p.step}/{p.total_steps}", end="",
              file=sys.stderr, flush=True)


def prompts_of(args: argparse.Namespace) -> list[str]:
    if args.from_file is None:
        return [args.prompt]
    lines = [line.strip() for line in args.from_file.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def save_run(args: argparse.Namespace, results: list[GeneratedImage]) -> list[Path]:
    """CompVis's layout under --outdir; without it, the paths the job saved to."""
    if args.outdir is None:
        return [r.path for r in results if r.path is not None]
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


def given_fields(args: argparse.Namespace, prompt: str, size: tuple[int, int], seed: int) -> dict:
    """The job's fields from the flags (``job_params`` adds the settings)."""
    given = {"prompt": prompt, "sampler_name": sampler_of(args), "scheduler": args.scheduler, "steps": args.ddim_steps,
             "cfg_scale": args.scale, "width": size[0], "height": size[1], "batch_size": args.n_samples, "n_iter": 1,
             "seed": seed, "styles": tuple(args.style)}
    return given if args.ddim_eta is None else {**given, "eta": args.ddim_eta}


def save_settings(runtime: Runtime, args: argparse.Namespace) -> SaveOptions | None:
    """--outdir: the CLI saves (nothing by the job); else the saving settings, less what --skip_* turn off."""
    if args.outdir is not None:
        return SaveOptions(images=False, grids=False)
    save = save_options_from(runtime.options.current, runtime.config.data_dir)
    return dataclasses.replace(save, images=save.images and not args.skip_save, grids=save.grids and not args.skip_grid)


def run(kind: str, argv: list[str], root: Path) -> int:
    refused = refused_flag(argv)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    args = build_parser(kind).parse_args(argv)
    runtime = Runtime(parse_config(_runtime_flags(args), root))
    try:
        model = runtime.acquire_model()  # checks the latent flags and the native size; the jobs reuse it
        channels, factor = model.detected.vae.embed_dim, 2 ** (len(model.detected.vae.ch_mult) - 1)
        if args.C not in (None, channels) or args.f not in (None, factor):
            print(f"error: --C/--f must match the model ({channels} latent channels, factor {factor})", file=sys.stderr)
            return 2
        make = txt2img_maker(args, model) if kind == "txt2img" else img2img_maker(args)
        save = save_settings(runtime, args)
        for prompt in prompts_of(args):
            for iteration in range(args.n_iter):
                seed = args.seed if args.fixed_code else args.seed + iteration * args.n_samples
                job = runtime.submit(make(runtime, prompt, seed), preview_every=0, save=save)
                for path in save_run(args, follow(job)):
                    print(path)
                print(file=sys.stderr)
    except (ParamsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        runtime.jobs.shutdown(timeout=5)
    return 0


def txt2img_maker(args: argparse.Namespace, model):
    default = declared_resolution(model.checkpoint.path) or (512, 512)
    size = (args.W or default[0], args.H or default[1])
    return lambda runtime, prompt, seed: job_params("txt2img", given_fields(args, prompt, size, seed),
                                                    runtime.options.current)


def img2img_maker(args: argparse.Namespace):
    """CompVis img2img keeps the init image's size, rounded down to a multiple of 8 (32 there)."""
    with Image.open(args.init_img) as opened:
        init = opened.convert("RGB")
    size = (init.width // 8 * 8, init.height // 8 * 8)

    def make(runtime: Runtime, prompt: str, seed: int) -> Img2ImgParams:
        given = {**given_fields(args, prompt, size, seed), "init_images": (init,), "denoising_strength": args.strength}
        return job_params("img2img", given, runtime.options.current)
    return make


def _runtime_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--ckpt", str(args.ckpt)] if args.ckpt else []
    flags += ["--data-dir", str(args.data_dir)] if args.data_dir else []
    return flags + (["--precision", "full"] if args.precision == "full" else [])
