"""AppConfig: everything the command line decides, frozen for the process's life.

Flag names follow the AUTOMATIC1111 web UI's ``cmd_args.py`` so that users'
launch scripts keep working.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 7860
API_ONLY_PORT = 7861  # A1111 serves --nowebui on 7861 so a UI instance can run beside it
PRECISIONS = ("autocast", "full", "half")
THEMES = ("light", "dark")
BACKEND_CHOICES = ("auto", "torch", "openvino", "compile")  # modules.device.runners.BACKENDS
LOCAL_SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


# A1111's upscaler folders under models/ and the flags that add one more folder to each.
UPSCALER_FOLDER_FLAGS = (("ESRGAN", "--esrgan-models-path"), ("RealESRGAN", "--realesrgan-models-path"),
                         ("SwinIR", "--swinir-models-path"), ("DAT", "--dat-models-path"))


class ConfigError(ValueError):
    """A flag value that cannot be used; the message names the flag."""


def parse_credentials(text: str, flag: str) -> tuple[tuple[str, str], ...]:
    """``user:pass[,user2:pass2]`` (A1111's --gradio-auth / --api-auth format) as pairs."""
    pairs = []
    for item in (part.strip() for part in text.replace("\n", ",").split(",")):
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"{flag}: expected user:password, got {item!r}")
        pairs.append((user, password))
    if not pairs:
        raise ConfigError(f"{flag}: no user:password pair given")
    return tuple(pairs)


@dataclass(frozen=True)
class DeviceFlags:
    """The user's device and precision wishes; ``modules.device.policy`` turns them into dtypes."""

    use_cpu: bool = False
    no_half: bool = False
    no_half_vae: bool = False
    precision: str = "autocast"
    bf16: bool = False
    device_id: int | None = None
    backend: str | None = None  # auto, torch, openvino, compile; None = the inference_backend setting
    medvram: bool = False  # CUDA: one net on the GPU at a time (modules/device/placement.py)
    lowvram: bool = False  # CUDA: the UNet too moved in block by block


@dataclass(frozen=True)
class ServerFlags:
    """How the app is served: UI and/or API, sharing, logins, looks."""

    api: bool = False  # mount /sdapi/v1 beside the UI
    nowebui: bool = False  # serve the API alone
    share: bool = False  # ask Gradio for a public share link
    gradio_auth: tuple[tuple[str, str], ...] = ()
    api_auth: tuple[tuple[str, str], ...] = ()
    theme: str | None = None  # None = the browser's preference
    autolaunch: bool = False  # open the system browser once serving
    enable_insecure_extension_access: bool = False

    @property
    def api_enabled(self) -> bool:
        return self.api or self.nowebui


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
    server: ServerFlags = ServerFlags()
    lora_dirs: tuple[Path, ...] = ()
    embeddings_dirs: tuple[Path, ...] = ()
    # (A1111's folder name under models/, the directories searched for it), e.g. ("ESRGAN", (...))
    upscaler_dirs: tuple[tuple[str, tuple[Path, ...]], ...] = ()

    @property
    def reachable_from_network(self) -> bool:
        """Bound beyond loopback (--listen, --server-name) or shared through a public link: then
        people other than the operator may reach the server, and what only the operator may do
        (choose output folders, install extensions) is refused to requests."""
        return self.server_name not in LOCAL_SERVER_NAMES or self.server.share

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
    paths.add_argument("--lora-dir", type=Path, action="append", default=[], help="another folder to scan for LoRA files (repeatable)")
    paths.add_argument("--embeddings-dir", type=Path, action="append", default=[], help="another folder to scan for textual inversion embeddings (repeatable)")
    for folder, flag in UPSCALER_FOLDER_FLAGS:
        paths.add_argument(flag, type=Path, default=None, help=f"another folder to scan for {folder} upscaler models")
    _add_device_flags(parser.add_argument_group("device and precision"))
    _add_server_flags(parser.add_argument_group("server"))
    parser.add_argument("--skip-install", action="store_true", help="do not check or install requirements, nor run extensions' install.py")
    parser.add_argument("--disable-all-extensions", action="store_true", help="load no extension (the list is kept)")
    parser.add_argument("--disable-extra-extensions", action="store_true", help="load only the extensions shipped with the program")
    return parser


def _add_device_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--use-cpu", nargs="*", default=None, metavar="MODULE", help="run on the CPU ('all' or no value: everything)")
    group.add_argument("--no-half", action="store_true", help="keep the UNet and text encoder in fp32 on CUDA")
    group.add_argument("--no-half-vae", action="store_true", help="keep the VAE in fp32 on CUDA")
    group.add_argument("--precision", choices=PRECISIONS, default="autocast", help="'full' = fp32 everywhere")
    group.add_argument("--bf16", action="store_true", help="bfloat16 instead of float16 for the UNet and text encoder")
    group.add_argument("--device-id", type=int, default=None, help="CUDA device index")
    group.add_argument("--backend", choices=BACKEND_CHOICES, default=None,
                       help="how the UNet, VAE and text encoder run: auto (OpenVINO on a CPU, PyTorch on CUDA), torch (eager), "
                            "openvino, compile (torch.compile); default: the inference_backend setting")
    group.add_argument("--compile", action="store_true", help="the same as --backend compile")
    group.add_argument("--medvram", action="store_true",
                       help="CUDA: keep only the net in use (text encoder, UNet or VAE) on the GPU")
    group.add_argument("--lowvram", action="store_true",
                       help="CUDA: as --medvram, and move the UNet to the GPU one block at a time (much slower)")


def _add_server_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--listen", action="store_true", help="bind 0.0.0.0 (reachable from the network)")
    group.add_argument("--server-name", default=None, help="address to bind")
    group.add_argument("--port", type=int, default=None, help=f"port (default {DEFAULT_PORT}; {API_ONLY_PORT} with --nowebui)")
    group.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    group.add_argument("--gradio-auth", default=None, metavar="USER:PASS[,...]", help="ask for a login on the web UI")
    group.add_argument("--gradio-auth-path", type=Path, default=None, help="a file of user:pass lines (or comma-separated) for the web UI login")
    group.add_argument("--api", action="store_true", help="serve the A1111-compatible /sdapi/v1 API beside the UI")
    group.add_argument("--nowebui", action="store_true", help="serve the API only (no web UI)")
    group.add_argument("--api-auth", default=None, metavar="USER:PASS[,...]", help="HTTP Basic auth on every API route")
    group.add_argument("--theme", choices=THEMES, default=None, help="force the light or dark theme")
    group.add_argument("--autolaunch", action="store_true", help="open the web UI in the system browser")
    group.add_argument("--enable-insecure-extension-access", action="store_true",
                       help="allow installing extensions even when the server is reachable from the network")


def server_flags_from_args(args: argparse.Namespace) -> ServerFlags:
    gradio_auth: tuple[tuple[str, str], ...] = ()
    if args.gradio_auth:
        gradio_auth += parse_credentials(args.gradio_auth, "--gradio-auth")
    if args.gradio_auth_path:
        try:
            text = args.gradio_auth_path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"--gradio-auth-path: cannot read {args.gradio_auth_path}: {error.strerror}") from error
        gradio_auth += parse_credentials(text.replace("\n", ","), "--gradio-auth-path")
    return ServerFlags(
        api=args.api, nowebui=args.nowebui, share=args.share, gradio_auth=gradio_auth,
        api_auth=parse_credentials(args.api_auth, "--api-auth") if args.api_auth else (),
        theme=args.theme, autolaunch=args.autolaunch,
        enable_insecure_extension_access=args.enable_insecure_extension_access,
    )


def _backend_from_args(args: argparse.Namespace) -> str | None:
    if args.compile and args.backend not in (None, "compile"):
        raise ConfigError(f"--compile: conflicts with --backend {args.backend}")
    return "compile" if args.compile else args.backend


def config_from_args(args: argparse.Namespace, root: Path) -> AppConfig:
    data_dir = (args.data_dir or root).resolve()
    models_dir = (args.models_dir or data_dir / "models").resolve()
    server_name = args.server_name or ("0.0.0.0" if args.listen else "127.0.0.1")
    use_cpu = args.use_cpu is not None and (not args.use_cpu or "all" in args.use_cpu)
    device = DeviceFlags(
        use_cpu=use_cpu, no_half=args.no_half, no_half_vae=args.no_half_vae,
        precision=args.precision, bf16=args.bf16, device_id=args.device_id,
        backend=_backend_from_args(args), medvram=args.medvram, lowvram=args.lowvram,
    )
    return AppConfig(
        root=root, data_dir=data_dir, models_dir=models_dir,
        ckpt_dirs=(models_dir / "Stable-diffusion", *(p.resolve() for p in args.ckpt_dir)),
        ckpt_files=tuple(p.resolve() for p in args.ckpt),
        vae_dirs=(models_dir / "VAE", *(p.resolve() for p in args.vae_dir)),
        device=device, server_name=server_name,
        port=args.port or (API_ONLY_PORT if args.nowebui else DEFAULT_PORT),
        server=server_flags_from_args(args),
        lora_dirs=(models_dir / "Lora", *(p.resolve() for p in args.lora_dir)),
        embeddings_dirs=(models_dir / "embeddings", *(p.resolve() for p in args.embeddings_dir)),
        upscaler_dirs=upscaler_dirs_from_args(args, models_dir),
    )


def upscaler_dirs_from_args(args: argparse.Namespace, models_dir: Path) -> tuple[tuple[str, tuple[Path, ...]], ...]:
    found = []
    for folder, flag in UPSCALER_FOLDER_FLAGS:
        extra = getattr(args, flag.lstrip("-").replace("-", "_"))
        found.append((folder, (models_dir / folder, *((extra.resolve(),) if extra else ()))))
    return tuple(found)


def parse_config(argv: list[str], root: Path) -> AppConfig:
    """Flags to config; a bad value exits like argparse does, with the flag named."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        return config_from_args(args, root)
    except ConfigError as error:
        parser.error(str(error))
