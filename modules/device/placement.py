"""Where each net's weights live between uses on a small GPU: ``--medvram`` and ``--lowvram``.

A1111's two offload modes, changing placement only, never the math:

- ``medvram``: the text encoder, the UNet and the VAE each live on the CPU and
  move whole to the GPU when a job reaches them; bringing one in sends the
  one that was there back. Peak VRAM is the largest net (the UNet) plus
  activations, instead of all three.
- ``lowvram``: the same for the text encoder and the VAE, and the UNet goes in
  pieces: its time embedding, each input block, the middle block, each output
  block and the output head are moved in one at a time, just before they run.
  Far slower (every step copies the whole UNet over the bus), for GPUs that
  cannot hold the UNet.

A piece is brought in by a forward pre-hook registered on our own modules (the
nets' direct children, or the UNet's blocks): the nets are called exactly as
without offloading, and no library function is replaced. The hook also moves
the piece's tensor inputs to the GPU (token ids are made on the device of the
text encoder's weights, which is the CPU until the hook has run).

Placement is chosen once per loaded model (``plan_placement``); on a CPU, or
without either flag, there is nothing to do and no hook is registered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

CPU = torch.device("cpu")


class Offload(Enum):
    NONE = "none"
    MEDVRAM = "medvram"
    LOWVRAM = "lowvram"


def choose_offload(medvram: bool, lowvram: bool, is_cuda: bool) -> Offload:
    """The offload mode the flags ask for; none on a CPU, where the weights already sit in RAM.
    ``--lowvram`` wins over ``--medvram`` (as in A1111)."""
    if not is_cuda:
        return Offload.NONE
    if lowvram:
        return Offload.LOWVRAM
    return Offload.MEDVRAM if medvram else Offload.NONE


@dataclass(frozen=True)
class Unit:
    """Modules that move to the compute device together, and the modules whose call brings them."""

    name: str
    modules: tuple[nn.Module, ...]
    triggers: tuple[nn.Module, ...]


def whole_net(name: str, net: nn.Module) -> Unit:
    """A net moved as one: any of its direct children being called brings the whole net.
    Parameters held by the net itself (outside any child) would be missed by the hooks, so
    every net planned this way must keep its weights in children (ours do; tested)."""
    return Unit(name, (net,), tuple(net.children()))


def unet_pieces(unet: nn.Module) -> list[Unit]:
    """The UNet as separately moved pieces: each element of a ModuleList child (input and
    output blocks) and each other direct child (time embedding, middle block, output head)."""
    units = []
    for child_name, child in unet.named_children():
        members = list(child) if isinstance(child, nn.ModuleList) else [child]
        numbered = isinstance(child, nn.ModuleList)
        for index, member in enumerate(members):
            units.append(Unit(f"UNet.{child_name}{f'.{index}' if numbered else ''}", (member,), (member,)))
    return units


class Placement:
    """At most one unit on the compute device at a time; the others on the CPU.

    ``move(module, device)`` moves a module's weights: injectable so that tests can record moves
    without a GPU. Moves happen on the thread that runs the nets (jobs run one at a
    time); the lock keeps a preview decode on another thread from interleaving.
    """

    def __init__(self, mode: Offload, units: Sequence[Unit], device: torch.device,
                 move: Callable[[nn.Module, torch.device], Any] | None = None):
        self.mode = mode
        self.device = device
        self.units = tuple(units)
        self._move = move or (lambda module, where: module.to(where))
        self._resident: Unit | None = None
        self._lock = threading.RLock()
        self._handles: list[RemovableHandle] = []
        for unit in self.units:
            for trigger in unit.triggers:
                # prepend: before any pre-hook registered earlier, which may read the weights
                hook = trigger.register_forward_pre_hook(self._hook(unit), with_kwargs=True, prepend=True)
                self._handles.append(hook)

    @property
    def resident(self) -> str | None:
        """The unit on the compute device now (None: all on the CPU)."""
        return None if self._resident is None else self._resident.name

    def bring(self, unit: Unit) -> None:
        with self._lock:
            if self._resident is unit:
                return
            if self._resident is not None:
                for module in self._resident.modules:
                    self._move(module, CPU)
            for module in unit.modules:
                self._move(module, self.device)
            self._resident = unit

    def offload_all(self) -> None:
        """Everything back to the CPU (before a model is dropped, or to free the GPU)."""
        with self._lock:
            if self._resident is not None:
                for module in self._resident.modules:
                    self._move(module, CPU)
            self._resident = None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, unit: Unit) -> Callable[..., tuple[tuple, dict]]:
        def before_call(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            self.bring(unit)
            return _to_device(args, self.device), {k: _to_device(v, self.device) for k, v in kwargs.items()}
        return before_call


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    return value


def plan_placement(mode: Offload, device: torch.device, unet: nn.Module, text_encoder: nn.Module,
                   vae: nn.Module, move: Callable[[nn.Module, torch.device], Any] | None = None) -> Placement | None:
    """The placement of one loaded model's nets (already on the CPU), or None without offloading.

    Parameters the UNet holds outside its children would have no hook to bring them in,
    so under lowvram they go to the compute device at once (the UNetModel has none).
    """
    if mode is Offload.NONE:
        return None
    units: list[Unit] = [whole_net("text encoder", text_encoder), whole_net("VAE", vae)]
    if mode is Offload.MEDVRAM:
        units.insert(1, whole_net("UNet", unet))
    else:
        units[1:1] = unet_pieces(unet)
    placement = Placement(mode, units, device, move)
    _own_tensors_to(unet if mode is Offload.LOWVRAM else None, device)
    return placement


def _own_tensors_to(net: nn.Module | None, device: torch.device) -> None:
    if net is None:
        return
    for parameter in net.parameters(recurse=False):
        parameter.data = parameter.data.to(device)
    for name, buffer in list(net.named_buffers(recurse=False)):
        setattr(net, name, buffer.to(device))

