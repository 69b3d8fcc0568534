"""Which device and which dtypes each net runs in.

CPU: fp32 everywhere (bf16 is many times slower than fp32 on CPUs without
AVX-512/AMX, and fp16 matmuls are not supported well). CUDA: fp16 UNet and
text encoder (bf16 on request), VAE in fp16 with an automatic fp32 retry when
a decode produces NaN (the SD VAE's activations overflow fp16 on some images),
or fp32 with ``--no-half-vae``.

Choosing is a pure function of the flags and of whether CUDA is available;
probing CUDA happens when the runtime is built, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modules.config import DeviceFlags
from modules.device.placement import Offload, choose_offload


@dataclass(frozen=True)
class DevicePolicy:
    device: torch.device
    unet_dtype: torch.dtype
    text_encoder_dtype: torch.dtype
    vae_dtype: torch.dtype
    # Decode again in fp32 when the low-precision decode yields NaN.
    vae_retry_in_fp32: bool
    offload: Offload = Offload.NONE  # --medvram / --lowvram placement (CUDA only)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        def name(dtype: torch.dtype) -> str:
            return str(dtype).removeprefix("torch.")

        return (
            f"{self.device}: UNet {name(self.unet_dtype)}, text encoder {name(self.text_encoder_dtype)}, "
            f"VAE {name(self.vae_dtype)}{' (fp32 retry on NaN)' if self.vae_retry_in_fp32 else ''}"
            f"{'' if self.offload is Offload.NONE else f', --{self.offload.value}'}"
        )


def choose_device_policy(flags: DeviceFlags, cuda_available: bool) -> DevicePolicy:
    if flags.use_cpu or not cuda_available:
        dtype = torch.bfloat16 if flags.bf16 else torch.float32
        return DevicePolicy(torch.device("cpu"), dtype, dtype, torch.float32, vae_retry_in_fp32=False)
    device = torch.device("cuda", flags.device_id or 0)
    full = flags.precision == "full" or flags.no_half
    half = torch.bfloat16 if flags.bf16 else torch.float16
    net_dtype = torch.float32 if full else half
    vae_fp32 = flags.no_half_vae or flags.precision == "full"
    vae_dtype = torch.float32 if vae_fp32 else half
    return DevicePolicy(device, net_dtype, net_dtype, vae_dtype, vae_retry_in_fp32=not vae_fp32,
                        offload=choose_offload(flags.medvram, flags.lowvram, is_cuda=True))


def probe_cuda() -> bool:
    """Whether a CUDA device can be used (called once, when the runtime is built)."""
    return torch.cuda.is_available()
