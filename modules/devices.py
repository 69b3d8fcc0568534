"""A1111 compatibility surface: ``modules.devices`` (``device``, ``dtype``, ``cpu``, ``torch_gc``)."""

from __future__ import annotations

import gc

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
