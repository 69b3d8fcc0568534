"""OpenVINO on the CPU: our own nets converted to OpenVINO models, compiled per static shape.

The module converted is the very ``nn.Module`` that eager inference runs (no
second model definition): ``openvino.convert_model`` traces it with example
inputs of the shape a job needs, and the result is compiled for the CPU with
an fp32 inference-precision hint (the default hint may pick bf16 on CPUs with
AMX, which would break agreement with eager).

A conversion costs tens of seconds for an SD1.5 UNet, so the converted model is
saved under the data dir's cache folder, keyed by what decides its graph and
weights: checkpoint hash, component, input shapes, OpenVINO version. The next
process asking for the same key reads it back instead of converting.

``openvino`` is imported only here, and only when a compile is asked for, so a
start-up that never uses it does not pay for the import.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """OpenVINO cannot be used here (not installed, or the conversion failed); the message says why."""


def openvino_version() -> str:
    """The installed OpenVINO's version; BackendUnavailable when it cannot be imported."""
    try:
        import openvino
    except ImportError as error:  # also an OSError-like failure to load its shared libraries
        raise BackendUnavailable(f"the openvino package cannot be imported ({error})") from error
    return openvino.__version__ if hasattr(openvino, "__version__") else openvino.get_version()


@dataclass(frozen=True)
class CompileKey:
    """What a converted model depends on: the weights (checkpoint hash), which net, its input shapes."""

    checkpoint_hash: str
    component: str
    shapes: tuple[tuple[int, ...], ...]
    version: str

    def file_stem(self) -> str:
        shape_text = "_".join("x".join(str(d) for d in shape) for shape in self.shapes)
        version = hashlib.sha256(self.version.encode()).hexdigest()[:8]
        return f"{self.component}-{self.checkpoint_hash[:16]}-{shape_text}-ov{version}"


class CompiledNet:
    """A compiled OpenVINO model called like the eager module: tensors in, one tensor out."""

    def __init__(self, compiled: Any, input_dtypes: Sequence[torch.dtype]):
        self._compiled = compiled
        self._input_dtypes = tuple(input_dtypes)
        # The eager net answers in its inputs' float dtype; token ids in give fp32 hidden states out.
        self._output_dtype = next((d for d in self._input_dtypes if d.is_floating_point), torch.float32)
        # An infer request is not thread-safe; jobs run one at a time, but previews may overlap.
        self._lock = threading.Lock()
        self._request = compiled.create_infer_request()

    def __call__(self, *inputs: Tensor) -> Tensor:
        arrays = [t.detach().to("cpu", dtype).contiguous().numpy() for t, dtype in zip(inputs, self._input_dtypes)]
        with self._lock:
            self._request.infer(arrays, share_inputs=True)
            # Copy out of the request's buffer: the next infer overwrites it.
            result = torch.from_numpy(self._request.get_output_tensor(0).data.copy())
        return result.to(self._output_dtype)


class OpenVINOCompiler:
    """Converts (or reads back from ``cache_dir``) and compiles nets; counts conversions for tests."""

    def __init__(self, cache_dir: Path, device: str = "CPU", say: Callable[[str], None] | None = None):
        self.cache_dir = cache_dir
        self.device = device
        self._say = say or (lambda text: print(text, flush=True))
        self.conversions = 0
        self.cache_reads = 0

    def compile(self, module: nn.Module, example_inputs: Sequence[Tensor], checkpoint_hash: str,
                component: str) -> CompiledNet:
        version = openvino_version()
        import openvino as ov

        key = CompileKey(checkpoint_hash, component, tuple(tuple(t.shape) for t in example_inputs), version)
        path = self.cache_dir / f"{key.file_stem()}.xml"
        core = ov.Core()
        if path.is_file() and path.with_suffix(".bin").is_file():
            model = core.read_model(str(path))
            self.cache_reads += 1
        else:
            shapes = ", ".join("x".join(str(d) for d in shape) for shape in key.shapes)
            self._say(f"OpenVINO: converting the {component} for inputs {shapes} (once per checkpoint and "
                      f"size; kept in {self.cache_dir})")
            model = self._convert(ov, module, example_inputs, component)
            self.conversions += 1
            self._save(ov, model, path)
        compiled = core.compile_model(model, self.device, {"INFERENCE_PRECISION_HINT": "f32"})
        return CompiledNet(compiled, [t.dtype for t in example_inputs])

    @staticmethod
    def _convert(ov: Any, module: nn.Module, example_inputs: Sequence[Tensor], component: str) -> Any:
        try:
            with torch.inference_mode(False), torch.no_grad():
                return ov.convert_model(module, example_input=tuple(t.detach().cpu() for t in example_inputs))
        except Exception as error:  # the converter raises many kinds; any one means "run eager"
            raise BackendUnavailable(f"OpenVINO could not convert the {component}: "
                                     f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error

    @staticmethod
    def _save(ov: Any, model: Any, path: Path) -> None:
        """Write xml+bin under temporary names, then rename: a killed process leaves no half model
        that a later start would read."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.stem + ".partial.xml")
        try:
            ov.save_model(model, str(partial), compress_to_fp16=False)
            partial.with_suffix(".bin").replace(path.with_suffix(".bin"))
            partial.replace(path)
        except OSError as error:  # a read-only data dir costs the next start a conversion, nothing else
            log.warning("could not cache the converted model in %s: %s", path.parent, error)


class ModuleCall(nn.Module):
    """A bound method of a net as a module (``vae.decode``, ``vae.encode``), so that it can be
    converted without converting the whole net."""

    def __init__(self, owner: nn.Module, call: Callable[..., Tensor]):
        super().__init__()
        self.owner = owner
        self._call = call

    def forward(self, *inputs: Tensor) -> Tensor:
        return self._call(*inputs)
