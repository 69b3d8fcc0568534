"""The read-only lists the API serves (samplers, models, styles, scripts, ...), as A1111 shapes them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from modules.config import AppConfig
from modules.extensions import manage
from modules.pipeline.upscale import LATENT_UPSCALE_MODES
from modules.runtime import Runtime
from modules.sampling.catalog import SAMPLERS, SCHEDULES
from modules.styles import read_styles
from modules.upscalers.library import RESAMPLERS, UPSCALER_NONE

# A1111's schedulers that read the model's own sigma table, and their default rho (-1 = none).
_NEEDS_MODEL_TABLE = {"uniform", "sgm_uniform", "simple", "normal", "ddim"}
_DEFAULT_RHO = {"karras": 7.0, "polyexponential": 1.0}
# A1111 lists the resamplers with a nominal scale of 4 (UpscalerData's default); they resize to any size.
_NOMINAL_UPSCALER_SCALE = 4


def samplers() -> list[dict[str, Any]]:
    def options(spec) -> dict[str, str]:
        flags = {"scheduler": spec.default_schedule, "second_order": spec.second_order or None,
                 "discard_next_to_last_sigma": spec.discard_penultimate_sigma or None, "uses_ensd": spec.uses_ensd or None,
                 "brownian_noise": spec.sde or None}
        return {key: str(value) if value is not True else "True" for key, value in flags.items() if value}
    return [{"name": spec.name, "aliases": list(spec.aliases), "options": options(spec)} for spec in SAMPLERS]


def schedulers() -> list[dict[str, Any]]:
    return [{"name": spec.name, "label": spec.label, "aliases": list(spec.aliases) or None,
             "default_rho": _DEFAULT_RHO.get(spec.name, -1.0), "need_inner_model": spec.name in _NEEDS_MODEL_TABLE}
            for spec in SCHEDULES]


def upscalers(runtime: Runtime) -> list[dict[str, Any]]:
    """A1111's fields; a model file's ``model_name`` is its folder's family (ESRGAN, RealESRGAN,
    SwinIR, DAT) and ``scale`` the one its name states (4 when it states none, as A1111 lists)."""
    builtins = [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": _NOMINAL_UPSCALER_SCALE}
                for name in (UPSCALER_NONE, *RESAMPLERS)]
    return builtins + [{"name": f.name, "model_name": f.folder, "model_path": str(f.path), "model_url": None,
                        "scale": f.nominal_scale} for f in runtime.upscaler_library.files()]


def realesrgan_models(runtime: Runtime) -> list[dict[str, Any]]:
    return [{"name": f.name, "path": str(f.path), "scale": f.nominal_scale}
            for f in runtime.upscaler_library.files() if f.folder == "RealESRGAN"]


def latent_upscale_modes() -> list[dict[str, str]]:
    return [{"name": name} for name in LATENT_UPSCALE_MODES]


def sd_models(runtime: Runtime) -> list[dict[str, Any]]:
    return [{"title": f.title, "model_name": f.model_name, "hash": f.shorthash, "sha256": f.sha256,
             "filename": str(f.path), "config": None} for f in runtime.checkpoints()]


def sd_vae(runtime: Runtime) -> list[dict[str, str]]:
    return [{"model_name": f.name, "filename": str(f.path)} for f in runtime.vae_files()]


def prompt_styles(runtime: Runtime) -> list[dict[str, str]]:
    return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
            for s in read_styles(runtime.config.styles_file).values()]


def scripts(runtime: Runtime) -> dict[str, list[str]]:
    """Script names as A1111 gives them: lower-cased titles, selectable and always-on."""
    return {tab: [s.title().lower() for s in runtime.scripts.scripts(is_img2img)]
            for tab, is_img2img in (("txt2img", False), ("img2img", True))}


def script_info(runtime: Runtime) -> list[dict[str, Any]]:
    return [{"name": s.title().lower(), "is_alwayson": s.is_alwayson(is_img2img), "is_img2img": is_img2img,
             "args": [{**dataclasses.asdict(arg), "choices": list(arg.choices) if arg.choices else None}
                      for arg in s.described_args(is_img2img)]}
            for is_img2img in (False, True) for s in runtime.scripts.scripts(is_img2img)]


def extensions(runtime: Runtime) -> list[dict[str, Any]]:
    """Every extension folder with its git data (empty strings when it is not a git clone), as A1111 lists them."""
    listed = manage.installed(runtime.config.data_dir / "extensions", runtime.options.current.disabled_extensions)
    return [{"name": e.name, "remote": e.remote, "branch": e.branch, "commit_hash": e.commit_hash,
             "version": e.version, "commit_date": e.commit_date, "enabled": e.enabled} for e in listed]


def cmd_flags(config: AppConfig) -> dict[str, Any]:
    """The command line as A1111's flag names; passwords are not echoed."""
    server, device = config.server, config.device

    def paths(items: tuple[Path, ...]) -> list[str]:
        return [str(p) for p in items]

    def redacted(pairs: tuple[tuple[str, str], ...]) -> str | None:
        return ",".join(f"{user}:***" for user, _ in pairs) or None

    return {
        "data_dir": str(config.data_dir), "models_dir": str(config.models_dir), "ckpt_dir": paths(config.ckpt_dirs),
        "ckpt": paths(config.ckpt_files), "vae_dir": paths(config.vae_dirs), "lora_dir": paths(config.lora_dirs),
        "embeddings_dir": paths(config.embeddings_dirs), "server_name": config.server_name, "port": config.port,
        "listen": config.server_name == "0.0.0.0", "api": server.api, "nowebui": server.nowebui, "share": server.share,
        "gradio_auth": redacted(server.gradio_auth), "api_auth": redacted(server.api_auth), "theme": server.theme,
        "autolaunch": server.autolaunch, "enable_insecure_extension_access": server.enable_insecure_extension_access,
        "use_cpu": ["all"] if device.use_cpu else [], "no_half": device.no_half, "no_half_vae": device.no_half_vae,
        "precision": device.precision, "bf16": device.bf16, "device_id": device.device_id,
    }


def _meminfo() -> dict[str, int]:
    values = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values


def _process_rss() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def memory() -> dict[str, Any]:
    """RAM: the system's total and available, and this process's resident size as "used" (as A1111)."""
    info = _meminfo()
    ram = {"free": info.get("MemAvailable"), "used": _process_rss(), "total": info.get("MemTotal")}
    if not torch.cuda.is_available():
        return {"ram": ram, "cuda": {"error": "CUDA is not available"}}
    free, total = torch.cuda.mem_get_info()
    stats = torch.cuda.memory_stats()

    def pick(name: str) -> dict[str, int]:
        return {"current": stats.get(f"{name}.all.current", 0), "peak": stats.get(f"{name}.all.peak", 0)}

    cuda = {"system": {"free": free, "used": total - free, "total": total},
            "active": pick("active_bytes"), "allocated": pick("allocated_bytes"), "reserved": pick("reserved_bytes"),
            "inactive": pick("inactive_split_bytes"),
            "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)}}
    return {"ram": ram, "cuda": cuda}
