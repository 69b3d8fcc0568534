"""How each net of a loaded model is run: eager PyTorch, OpenVINO, or torch.compile.

A runner is called exactly like the eager net it stands for. It compiles once
per input shape (static shapes: the batch and latent size of a job) and keeps
the compiled form for the next job of that shape. When compiling is not
possible (OpenVINO missing, a conversion failing) the runner runs eager and
the reason is told once on the console; a job that changes what a compiled
net computes (LoRA weights patched in, seamless tiling's circular padding)
runs eager for that job, and the console says which and why.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from modules.device.openvino_backend import BackendUnavailable, ModuleCall, OpenVINOCompiler
from modules.nets.text_encoders import TextEncoder

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino", "compile")
# "auto" on a CPU: OpenVINO for models whose UNet has at least this many parameters, eager below.
# For an SD-size UNet (860M) one conversion (cached on disk afterwards) costs less than the time it
# saves in the first image; for the small bundled model (a few M) the conversion costs many images'
# worth of time (README, "Performance", has the measurements behind this choice).
AUTO_OPENVINO_MIN_PARAMETERS = 100_000_000


class Notices:
    """Console messages said once per process (which backend failed and why, which job ran eager)."""

    def __init__(self, say: Callable[[str], None] | None = None):
        self._said: set[str] = set()
        self._lock = threading.Lock()
        self._say = say or (lambda text: print(text, flush=True))

    def once(self, text: str) -> bool:
        with self._lock:
            if text in self._said:
                return False
            self._said.add(text)
        self._say(text)
        return True

    @property
    def said(self) -> tuple[str, ...]:
        return tuple(sorted(self._said))


def resolve_backend(requested: str, is_cuda: bool, unet_parameters: int = 0) -> str:
    """The backend a request names; "auto" is eager PyTorch on CUDA (OpenVINO's CPU plugin does not
    run on NVIDIA GPUs) and on a CPU OpenVINO for SD-size models, eager for small ones."""
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "auto":
        return "openvino" if not is_cuda and unet_parameters >= AUTO_OPENVINO_MIN_PARAMETERS else "torch"
    if requested == "openvino" and is_cuda:
        return "torch"
    return requested


Compile = Callable[[Sequence[Tensor]], Callable[..., Tensor]]


class ComponentRunner:
    """``eager`` through a compiled version per input shape, eager when compiling is impossible."""

    def __init__(self, name: str, eager: Callable[..., Tensor], compile_for: Compile, notices: Notices,
                 arg_names: tuple[str, ...] = ()):
        self.name = name
        self.arg_names = arg_names  # eager's parameter names, so callers may pass any of them by name
        self.eager = eager
        self._compile_for = compile_for
        self._notices = notices
        self._compiled: dict[tuple[tuple[int, ...], ...], Callable[..., Tensor]] = {}
        self._lock = threading.Lock()
        self.unavailable: str | None = None

    def __call__(self, *inputs: Tensor, **named: Tensor) -> Tensor:
        if named:
            unknown = set(named) - set(self.arg_names[len(inputs):])
            if unknown:
                raise TypeError(f"{self.name}: unexpected arguments {sorted(unknown)}")
            inputs = (*inputs, *(named[name] for name in self.arg_names[len(inputs):len(inputs) + len(named)]))
        compiled = self.compiled_for(inputs)
        return self.eager(*inputs) if compiled is None else compiled(*inputs)

    def compiled_for(self, inputs: Sequence[Tensor]) -> Callable[..., Tensor] | None:
        shapes = tuple(tuple(t.shape) for t in inputs)
        with self._lock:
            if shapes in self._compiled or self.unavailable is not None:
                return self._compiled.get(shapes)
            try:
                compiled = self._compile_for(inputs)
            except BackendUnavailable as error:
                self.unavailable = str(error)
                self._notices.once(f"{self.name}: running eager PyTorch: {error}")
                return None
            self._compiled[shapes] = compiled
            return compiled

    @property
    def compiled_shapes(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        return tuple(self._compiled)


@dataclass(frozen=True)
class ModelRunners:
    """The nets of one loaded model as the chosen backend runs them (signatures as the eager nets)."""

    backend: str
    unet: Callable[..., Tensor]  # (x, timesteps, context) -> eps or v
    vae_decode: Callable[[Tensor], Tensor]  # unscaled latents -> pixels in [-1, 1]
    vae_encode: Callable[[Tensor], Tensor]  # pixels -> posterior mean
    # (token ids, clip skip, input vectors) -> hidden states, as TextEncoder.encode; None: eager
    text_encode: Callable[..., Tensor] | None = None


def weights_id(*hashes: str | None) -> str:
    """One id for the weights a compiled net bakes in (checkpoint hash, and the VAE file's when
    a separate VAE replaced the checkpoint's own)."""
    return hashlib.sha256("|".join(h or "-" for h in hashes).encode()).hexdigest()


def openvino_compile(compiler: OpenVINOCompiler, module: nn.Module, weights: str, component: str) -> Compile:
    return lambda inputs: compiler.compile(module, inputs, weights, component)


def torch_compile(module: nn.Module, component: str) -> Compile:
    def compile_for(inputs: Sequence[Tensor]) -> Callable[..., Tensor]:
        try:
            compiled = torch.compile(module, dynamic=False)
            with torch.inference_mode():
                compiled(*inputs)  # compile now, so a failure falls back instead of failing the job
        except Exception as error:  # inductor raises many kinds (no C++ compiler, unsupported op)
            raise BackendUnavailable(f"torch.compile failed for the {component}: {type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''}") from error
        return compiled
    return compile_for


def build_runners(unet: nn.Module, vae: nn.Module, backend: str, weights: str, cache_dir: Path,
                  notices: Notices, compiler: OpenVINOCompiler | None = None,
                  text_encoder: TextEncoder | None = None) -> ModelRunners:
    """Runners for one model's UNet, VAE and (when given) text encoder under ``backend``
    (already resolved: not "auto")."""
    decode, encode = ModuleCall(vae, vae.decode), ModuleCall(vae, vae.encode)
    if backend == "torch":
        return ModelRunners(backend, unet, vae.decode, vae.encode)
    if backend == "openvino":
        compiler = compiler or OpenVINOCompiler(cache_dir, say=notices.once)
        compile_module = lambda module, component: openvino_compile(compiler, module, weights, component)  # noqa: E731
    elif backend == "compile":
        compile_module = torch_compile
    else:
        raise ValueError(f"not a resolved backend: {backend!r}")

    def runner(name: str, module: nn.Module, arg_names: tuple[str, ...]) -> ComponentRunner:
        return ComponentRunner(name, module, compile_module(module, name.replace(" ", "-").lower()), notices,
                               arg_names)

    return ModelRunners(
        backend, runner("UNet", unet, ("x", "timesteps", "context")), runner("VAE decoder", decode, ("z",)),
        runner("VAE encoder", encode, ("x",)),
        None if text_encoder is None else TextEncoderRunner(text_encoder, runner),
    )


class TextEncoderCall(nn.Module):
    """``TextEncoder.encode`` at one clip skip as a module of tensors only: token ids, and for
    textual inversion the input vectors and where they go. The skip picks the layer, so it is
    part of the graph: one converted model per skip (and per with/without embeddings)."""

    def __init__(self, text_encoder: TextEncoder, clip_skip: int):
        super().__init__()
        self.text_encoder = text_encoder
        self.clip_skip = clip_skip

    def forward(self, token_ids: Tensor, vectors: Tensor | None = None, where: Tensor | None = None) -> Tensor:
        return self.text_encoder.encode(token_ids, self.clip_skip, None if vectors is None else (vectors, where))


class TextEncoderRunner:
    """Called as ``TextEncoder.encode``; each (clip skip, embeddings or not) has its own runner."""

    def __init__(self, text_encoder: TextEncoder,
                 runner: Callable[[str, nn.Module, tuple[str, ...]], ComponentRunner]):
        self.text_encoder = text_encoder
        self._runner = runner
        self._runners: dict[tuple[int, bool], ComponentRunner] = {}
        self._lock = threading.Lock()

    def __call__(self, token_ids: Tensor, clip_skip: int | None = None,
                 input_vectors: tuple[Tensor, Tensor] | None = None) -> Tensor:
        skip = clip_skip or self.text_encoder.config.default_clip_skip
        if not 1 <= skip <= self.text_encoder.config.num_layers:  # the eager call says what is wrong
            return self.text_encoder.encode(token_ids, clip_skip, input_vectors)
        runner = self.runner_for(skip, input_vectors is not None)
        return runner(token_ids) if input_vectors is None else runner(token_ids, *input_vectors)

    def runner_for(self, skip: int, embeddings: bool) -> ComponentRunner:
        with self._lock:
            key = (skip, embeddings)
            if key not in self._runners:
                name = f"text encoder skip{skip}{' embeddings' if embeddings else ''}"
                arg_names = ("token_ids", "vectors", "where") if embeddings else ("token_ids",)
                self._runners[key] = self._runner(name, TextEncoderCall(self.text_encoder, skip), arg_names)
            return self._runners[key]


def eager_reasons(has_loras: bool, seamless_tiling: bool) -> tuple[str, ...]:
    """Why a job must run the eager nets: it changes what the compiled nets compute."""
    reasons = []
    if has_loras:
        reasons.append("LoRA weights are patched into the eager UNet for this job")
    if seamless_tiling:
        reasons.append("seamless tiling switches the convolutions to circular padding")
    return tuple(reasons)
