"""A1111 compatibility surface: ``modules.devices`` (``device``, ``dtype``, ``cpu``, ``torch_gc``,
``autocast``, ``without_autocast``, ``has_mps``, ``has_xpu``, ``get_device_for``,
``NansException``, ``test_for_nans``)."""

from __future__ import annotations

import contextlib
import gc
import sys

import torch

cpu = torch.device("cpu")
device = torch.device("cuda") if torch.cuda.is_available() else cpu
device_interrogate = device_gfpgan = device_esrgan = device_codeformer = device
dtype = torch.float16 if device.type == "cuda" else torch.float32
dtype_vae = dtype_unet = dtype
dtype_inference = dtype
unet_needs_upcast = False


def get_optimal_device() -> torch.device:
    return device


def get_optimal_device_name() -> str:
    return device.type


def torch_gc() -> None:
    """Frees cached accelerator memory, as A1111's ``torch_gc``."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def cond_cast_unet(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(dtype_unet)


def cond_cast_float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float()


def get_cuda_device_string() -> str:
    return "cuda"


def get_device_for(task: str) -> torch.device:
    """The device for a task (A1111 lets ``--use-cpu`` move single tasks to the CPU; here all share one)."""
    return device


def has_mps() -> bool:
    """Apple's Metal backend is in use (A1111 asks this only on macOS)."""
    return sys.platform == "darwin" and torch.backends.mps.is_available()


def has_xpu() -> bool:
    return hasattr(torch, "xpu") and torch.xpu.is_available()


def autocast(disable: bool = False):
    """A context where CUDA half-precision autocast is on; a no-op for float32 work, on the CPU,
    or with ``disable`` (A1111's rule). The engine casts explicitly; this is for extensions' own nets."""
    if disable or dtype == torch.float32 or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda")


def without_autocast(disable: bool = False):
    """A context with autocast switched off, when it is on."""
    if torch.is_autocast_enabled() and not disable:
        return torch.autocast("cuda", enabled=False)
    return contextlib.nullcontext()


class NansException(Exception):
    """A1111's error for NaN output of the UNet or the VAE."""


def test_for_nans(x: torch.Tensor, where: str) -> None:
    """Raises ``NansException`` when ``x``'s first value is NaN (A1111 checks that one value)."""
    if torch.isnan(x[(0,) * x.dim()]).item():
        raise NansException(f"A tensor with all NaNs was produced in {where}.")
