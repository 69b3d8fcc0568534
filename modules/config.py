"""AppConfig: everything the command line decides, frozen for the process's life.

Flag names follow the AUTOMATIC1111 web UI's ``cmd_args.py`` so that users'
launch scripts keep working.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 7860
PRECISIONS = ("autocast", "full", "half")


@dataclass(frozen=True)
class DeviceFlags:
    """The user's device and precision wishes; ``modules.device.policy`` turns them into dtypes."""

    use_cpu: bool = False
    no_half: bool = False
    no_half_vae: bool = False
    precision: str = "autocast"
    bf16: bool = False
    device_id: int | None = None


@dataclass(frozen=True)
class AppConfig:
    root: Path
    data_dir: Path
    models_dir: Path
    ckpt_dirs: tuple[Path, ...]
    ckpt_files: tuple[Path, ...]
    vae_dirs: tuple[Path, ...]
    device: DeviceFlags
    server_name: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    @property
    def options_file(self) -> Path:
        return self.data_dir / "config.json"

    @property
    def hash_cache_file(self) -> Path:
        return self.data_dir / "cache" / "hashes.json"

    @property
    def styles_file(self) -> Path:
        return self.data_dir / "styles.csv"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description="Stable Diffusion web UI")
    paths = parser.add_argument_group("folders")
    paths.add_argument("--data-dir", type=Path, help="where settings, caches and outputs live (default: the program folder)")
    paths.add_argument("--models-dir", type=Path, help="base folder of Stable-diffusion/, VAE/, Lora/, embeddings/ (default: <data-dir>/models)")
    paths.add_argument("--ckpt-dir", type=Path, action="append", default=[], help="another folder to scan for checkpoints (repeatable)")
    paths.add_argument("--ckpt", type=Path, action="append", default=[], help="a checkpoint file to list and load by default (repeatable)")
    paths.add_argument("--vae-dir", type=Path, action="append", default=[], help="another folder to scan for VAE files (repeatable)")
    _add_device_flags(parser.add_argument_group("device and precision"))
    _add_server_flags(parser.add_argument_group("server"))
    parser.add_argument("--skip-install", action="store_true", help="do not check or install requirements")
    return parser


def _add_device_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--use-cpu", nargs="*", default=None, metavar="MODULE", help="run on the CPU ('all' or no value: everything)")
    group.add_argument("--no-half", action="store_true", help="keep the UNet and text encoder in fp32 on CUDA")
    group.add_argument("--no-half-vae", action="store_true", help="keep the VAE in fp32 on CUDA")
    group.add_argument("--precision", choices=PRECISIONS, default="autocast", help="'full' = fp32 everywhere")
    group.add_argument("--bf16", action="store_true", help="bfloat16 instead of float16 for the UNet and text encoder")
    group.add_argument("--device-id", type=int, default=None, help="CUDA device index")


def _add_server_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--listen", action="store_true", help="bind 0.0.0.0 (reachable from the network)")
    group.add_argument("--server-name", default=None, help="address to bind")
    group.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")


def config_from_args(args: argparse.Namespace, root: Path) -> AppConfig:
    data_dir = (args.data_dir or root).resolve()
    models_dir = (args.models_dir or data_dir / "models").resolve()
    server_name = args.server_name or ("0.0.0.0" if args.listen else "127.0.0.1")
    use_cpu = args.use_cpu is not None and (not args.use_cpu or "all" in args.use_cpu)
    device = DeviceFlags(
        use_cpu=use_cpu, no_half=args.no_half, no_half_vae=args.no_half_vae,
        precision=args.precision, bf16=args.bf16, device_id=args.device_id,
    )
    return AppConfig(
        root=root, data_dir=data_dir, models_dir=models_dir,
        ckpt_dirs=(models_dir / "Stable-diffusion", *(p.resolve() for p in args.ckpt_dir)),
        ckpt_files=tuple(p.resolve() for p in args.ckpt),
        vae_dirs=(models_dir / "VAE", *(p.resolve() for p in args.vae_dir)),
        device=device, server_name=server_name, port=args.port,
    )


def parse_config(argv: list[str], root: Path) -> AppConfig:
    return config_from_args(build_arg_parser().parse_args(argv), root)
