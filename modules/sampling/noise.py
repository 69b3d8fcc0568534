"""Seeds and per-image noise, with AUTOMATIC1111's documented semantics.

Every random number of a generation comes from here, drawn from explicit
``torch.Generator`` objects: one per image, so image k of a batch is the same
picture as its seed generated alone. Nothing here reads or changes the global
torch, ``random`` or numpy RNG state.

The rules (A1111 v1.10 ``processing.py`` / ``rng.py`` behaviour):

* seed -1 means a random seed in [0, 4294967294); seeds are 32-bit unsigned;
* image i uses ``seed + i``; with a variation strength > 0 every image keeps
  ``seed`` and ``subseed + i`` varies instead (the subseed always increments);
* the initial noise of an image is the first ``randn`` of its seed's generator;
  a variation seed mixes in the subseed's noise by slerp; "resize seed from"
  draws the composition at another size and pastes it centred;
* later draws (ancestral / SDE step noise) continue each image's generator, or,
  with an eta noise seed delta (ENSD) != 0, come from fresh generators seeded
  with ``seed + ENSD``.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Protocol, Sequence

import torch

SEED_MAX = 0xFFFF_FFFF
"""The largest seed a user may give: A1111 seeds are 32-bit unsigned."""

RANDOM_SEED_BOUND = 4_294_967_294
"""A random seed lies in [0, RANDOM_SEED_BOUND), A1111's range for seed -1."""

TORCH_SEED_MODULUS = 2**64
"""``torch.Generator.manual_seed`` takes a 64-bit value and wraps negatives
modulo 2**64, so derived seeds (seed + i, seed + ENSD) are reduced the same way."""

NEARLY_PARALLEL = 0.9995
"""Above this mean cosine slerp's 1/sin(omega) is ill-conditioned; lerp instead."""

DEFAULT_LATENT_DOWNSCALE = 8
"""Pixels per latent pixel of the SD1/SD2 autoencoder (A1111's ``opt_f``)."""


def system_entropy() -> int:
    """A random seed from the operating system (``secrets``, not the global RNG)."""
    return secrets.randbelow(RANDOM_SEED_BOUND)


def resolve_seed(seed: int, entropy: Callable[[], int] = system_entropy) -> int:
    """The seed to use for ``seed``: any negative value means "random".

    A1111 turns -1 into a random seed; we treat every negative value that way,
    since a negative seed has no other meaning. ``entropy`` must return a value
    in [0, RANDOM_SEED_BOUND); it is asked only when a random seed is needed.
    """
    _require_int("seed", seed)
    if seed > SEED_MAX:
        raise ValueError(f"seed: {seed} is above {SEED_MAX}; seeds are 32-bit unsigned integers")
    if seed >= 0:
        return seed
    drawn = entropy()
    _require_int("entropy() result", drawn)
    if not 0 <= drawn < RANDOM_SEED_BOUND:
        raise ValueError(f"entropy() returned {drawn}, outside the seed range [0, {RANDOM_SEED_BOUND})")
    return drawn


def image_seeds(
    seed: int, subseed: int, subseed_strength: float, count: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-image (seeds, subseeds) of ``count`` images, from resolved seeds.

    As A1111: the subseed of image i is always ``subseed + i``; the seed of
    image i is ``seed + i`` without variation, and ``seed`` for every image when
    ``subseed_strength > 0``, so the images of a variation run share their
    composition and differ by the variation seed only.
    """
    _require_int("seed", seed)
    _require_int("subseed", subseed)
    _require_int("count", count)
    if seed < 0 or subseed < 0:
        raise ValueError("seed and subseed must be resolved (non-negative) before image_seeds; use resolve_seed")
    if count < 1:
        raise ValueError(f"count: {count} images requested; at least 1 is needed")
    _require_strength(subseed_strength)
    subseeds = tuple(subseed + i for i in range(count))
    if subseed_strength > 0:
        return (seed,) * count, subseeds
    return tuple(seed + i for i in range(count)), subseeds


class RngSource(str, Enum):
    """Where noise is drawn (A1111 setting "Random number generator source", infotext ``RNG``).

    CPU draws on a CPU generator and moves the result, so images are identical
    on every device. GPU draws on the device's own generator (CUDA's Philox), so
    images differ between CPU and GPU runs. NV (A1111's numpy port of CUDA's
    Philox-4x32) is recognised, so infotexts that name it parse, but is refused
    when noise is drawn: it is not implemented.
    """

    CPU = "CPU"
    GPU = "GPU"
    NV = "NV"

    @classmethod
    def from_label(cls, label: str) -> "RngSource":
        """The source named by an infotext or settings label ("CPU", "GPU", "NV")."""
        for source in cls:
            if source.value.lower() == str(label).strip().lower():
                return source
        names = ", ".join(source.value for source in cls)
        raise ValueError(f"RNG: unknown random number generator source {label!r}; expected one of {names}")


class NoiseSource(Protocol):
    """What samplers draw their step noise from."""

    def randn_like(self, x: torch.Tensor, rows: Sequence[bool] | None = None) -> torch.Tensor:
        """Standard normal noise shaped like ``x``; row k from image k's generator.

        With ``rows``, only the images flagged True draw (their generators advance);
        the other rows are zero and their generators stay where they are.
        """
        ...


@dataclass(frozen=True)
class NoiseSpec:
    """Everything that decides the noise of one batch, device and dtype aside.

    ``seeds`` / ``subseeds`` are per image (see ``image_seeds``). A resize-from
    size in pixels (``seed_resize_from_h``/``_w``) is active only when both are
    > 0, as in A1111 (its API sends -1 for "off"). ``latent_downscale`` is the
    autoencoder's pixels-per-latent factor, 8 for SD1/SD2. ``brownian_per_image``:
    the SDE samplers' Brownian noise has one tree per image (A1111's default), or,
    when False (A1111's "Do not make DPM++ SDE deterministic across different batch
    sizes"), one for the batch (``brownian.BrownianNoise``).
    """

    seeds: tuple[int, ...]
    latent_shape: tuple[int, int, int]
    subseeds: tuple[int, ...] = ()
    subseed_strength: float = 0.0
    seed_resize_from_h: int = 0
    seed_resize_from_w: int = 0
    eta_noise_seed_delta: int = 0
    source: RngSource = RngSource.CPU
    latent_downscale: int = DEFAULT_LATENT_DOWNSCALE
    brownian_per_image: bool = True

    def __post_init__(self) -> None:
        _validate_seeds("seeds", self.seeds)
        _validate_shape(self.latent_shape)
        _require_strength(self.subseed_strength)
        if self.subseed_strength > 0:
            _validate_seeds("subseeds", self.subseeds)
            if len(self.subseeds) != len(self.seeds):
                raise ValueError(
                    f"subseeds: {len(self.subseeds)} given for {len(self.seeds)} seeds; one per image is needed"
                )
        for name in ("seed_resize_from_h", "seed_resize_from_w", "eta_noise_seed_delta", "latent_downscale"):
            _require_int(name, getattr(self, name))
        if self.latent_downscale < 1:
            raise ValueError(f"latent_downscale: {self.latent_downscale} must be at least 1")
        if not isinstance(self.source, RngSource):
            raise TypeError(f"source: expected an RngSource, got {self.source!r}")
        _validate_resize_from(self)

    @property
    def has_variation(self) -> bool:
        return self.subseed_strength > 0

    @property
    def noise_shape(self) -> tuple[int, int, int]:
        """The shape the composition is drawn at: the resize-from size, or the latent's."""
        if self.seed_resize_from_h <= 0 or self.seed_resize_from_w <= 0:
            return self.latent_shape
        height = self.seed_resize_from_h // self.latent_downscale
        width = self.seed_resize_from_w // self.latent_downscale
        return (self.latent_shape[0], height, width)


class ImageNoise:
    """The per-image generators of one batch; implements ``NoiseSource``.

    Call ``initial_noise()`` once, first; then ``randn_like(x)`` as often as the
    sampler needs. Each image's generator advances by one full latent draw in
    ``initial_noise`` (with resize-from, that draw is the canvas the composition
    is pasted onto; the composition itself comes from fresh generators), and
    ``randn_like`` continues from there, exactly as A1111's ``ImageRNG``. With
    ENSD != 0 the step noise instead comes from generators seeded with the
    image's *main* seed + ENSD (not the subseed), created after the initial
    draw, as A1111 does. A fresh ``ImageNoise`` is needed per sampling pass
    (A1111 builds a new one for the hires pass, at the upscaled shape).
    """

    def __init__(self, spec: NoiseSpec, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.spec = spec
        self.device = torch.device(device)
        self.dtype = dtype
        self._generator_device = generator_device(spec.source, self.device)
        self._generators = [self._generator(seed) for seed in spec.seeds]
        self._initial_drawn = False

    @property
    def batch_size(self) -> int:
        return len(self.spec.seeds)

    def initial_noise(self) -> torch.Tensor:
        """The starting latent noise, [B, C, H, W] in ``dtype`` on ``device``."""
        if self._initial_drawn:
            raise RuntimeError("initial_noise() was already drawn; build a new ImageNoise for another pass")
        rows = [self._initial_row(index) for index in range(self.batch_size)]
        self._initial_drawn = True
        if self.spec.eta_noise_seed_delta != 0:
            delta = self.spec.eta_noise_seed_delta
            self._generators = [self._generator(seed + delta) for seed in self.spec.seeds]
        return torch.stack(rows).to(dtype=self.dtype)

    def randn_like(self, x: torch.Tensor, rows: Sequence[bool] | None = None) -> torch.Tensor:
        """Step noise shaped like ``x`` (batch first); row k continues image k's generator.

        ``rows`` (one flag per image) limits the draw to the flagged images; the
        others get zeros and keep their generators' positions.
        """
        if not self._initial_drawn:
            raise RuntimeError("randn_like() called before initial_noise(); the initial noise must be drawn first")
        if x.dim() < 1 or x.shape[0] != self.batch_size:
            raise ValueError(
                f"randn_like: tensor of shape {tuple(x.shape)} has a batch dimension that does not match "
                f"the {self.batch_size} image generator(s)"
            )
        if rows is not None and len(rows) != self.batch_size:
            raise ValueError(f"randn_like: {len(rows)} row flags given for {self.batch_size} images")
        shape = tuple(x.shape[1:])
        flags = [True] * self.batch_size if rows is None else list(rows)
        drawn = [
            self._draw(generator, shape) if flag else torch.zeros(shape, device=self.device)
            for generator, flag in zip(self._generators, flags)
        ]
        return torch.stack(drawn).to(device=x.device, dtype=x.dtype)

    def _initial_row(self, index: int) -> torch.Tensor:
        """One image's initial noise, float32 on ``device``."""
        spec = self.spec
        resized = spec.noise_shape != spec.latent_shape
        if resized:
            composition = self._draw(self._generator(spec.seeds[index]), spec.noise_shape)
        else:
            composition = self._draw(self._generators[index], spec.latent_shape)
        if spec.has_variation:
            variation = self._draw(self._generator(spec.subseeds[index]), spec.noise_shape)
            composition = slerp(spec.subseed_strength, composition, variation)
        if not resized:
            return composition
        canvas = self._draw(self._generators[index], spec.latent_shape)
        return paste_centered(canvas, composition)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self._generator_device).manual_seed(seed % TORCH_SEED_MODULUS)

    def _draw(self, generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
        # Drawn in float32 on the generator's device, then moved: this is what
        # makes CPU noise identical on every device (A1111 "RNG: CPU").
        noise = torch.randn(shape, generator=generator, device=self._generator_device, dtype=torch.float32)
        return noise.to(self.device)


def generator_device(source: RngSource, device: torch.device) -> torch.device:
    """The device whose generator draws noise for ``source`` on ``device``.

    CPU always draws on the CPU. GPU draws on the model's device, except on
    CPU itself and on MPS, where A1111 also falls back to the CPU generator.
    """
    if source is RngSource.NV:
        raise NotImplementedError(
            "RNG: the 'NV' random number generator source (Philox-4x32 emulation of CUDA) is not "
            "supported; choose 'CPU' or 'GPU'"
        )
    if source is RngSource.CPU or device.type in ("cpu", "mps"):
        return torch.device("cpu")
    return device


def slerp(t: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation (Shoemake 1985) from ``low`` (t=0) to ``high`` (t=1).

    As A1111's variation seed, the vectors interpolated are the slices along
    dim 1 (for a (C, H, W) noise: each channel's columns, of length H), each on
    its own great circle. When the vectors are nearly parallel on average
    (mean cosine > NEARLY_PARALLEL) it falls back to a lerp; A1111 writes that
    lerp with its weights swapped, which gives the same result in the only case
    it is reached in practice (seed == subseed, identical noises). The cosine is
    clamped to [-1, 1] so rounding cannot make ``acos`` return NaN.
    """
    low_unit = low / torch.norm(low, dim=1, keepdim=True)
    high_unit = high / torch.norm(high, dim=1, keepdim=True)
    cosine = (low_unit * high_unit).sum(dim=1)
    if cosine.mean() > NEARLY_PARALLEL:
        return low * (1.0 - t) + high * t
    omega = torch.acos(cosine.clamp(-1.0, 1.0))
    sin_omega = torch.sin(omega)
    low_weight = (torch.sin((1.0 - t) * omega) / sin_omega).unsqueeze(1)
    high_weight = (torch.sin(t * omega) / sin_omega).unsqueeze(1)
    return low_weight * low + high_weight * high


def paste_centered(canvas: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """``canvas`` (C, H, W) with ``patch`` (C, h, w) pasted centred, cropped where larger.

    The offset is ``(H - h) // 2`` with floor division, as A1111's resize-seed-
    from: when the patch is larger by an odd amount, the copied span is
    ``h + 2 * offset`` long, so the last row/column keeps the canvas's noise.
    """
    rows_to, rows_from = _centered_spans(canvas.shape[1], patch.shape[1])
    cols_to, cols_from = _centered_spans(canvas.shape[2], patch.shape[2])
    result = canvas.clone()
    result[:, rows_to, cols_to] = patch[:, rows_from, cols_from]
    return result


def _centered_spans(target: int, source: int) -> tuple[slice, slice]:
    """(destination, source) slices that centre a length-``source`` span in ``target``."""
    offset = (target - source) // 2
    if offset >= 0:
        return slice(offset, offset + source), slice(0, source)
    length = source + 2 * offset
    return slice(0, length), slice(-offset, -offset + length)


def _require_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, got {value!r}")


def _require_strength(strength: object) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise TypeError(f"subseed_strength: expected a number in [0, 1], got {strength!r}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"subseed_strength: {strength} is outside [0, 1]")


def _validate_seeds(name: str, seeds: Sequence[int]) -> None:
    if not isinstance(seeds, tuple) or not seeds:
        raise ValueError(f"{name}: expected a non-empty tuple of per-image seeds, got {seeds!r}")
    for seed in seeds:
        _require_int(name, seed)
        if not 0 <= seed < TORCH_SEED_MODULUS:
            raise ValueError(f"{name}: {seed} is not a resolved seed (0 <= seed < 2**64); use resolve_seed first")


def _validate_resize_from(spec: NoiseSpec) -> None:
    _, height, width = spec.noise_shape
    if height < 1 or width < 1:
        raise ValueError(
            f"seed_resize_from: {spec.seed_resize_from_w}x{spec.seed_resize_from_h} px is smaller than "
            f"one latent pixel ({spec.latent_downscale} px)"
        )


def _validate_shape(shape: object) -> None:
    valid = isinstance(shape, tuple) and len(shape) == 3
    valid = valid and all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape)
    if not valid:
        raise ValueError(f"latent_shape: expected (channels, height, width) of positive integers, got {shape!r}")
