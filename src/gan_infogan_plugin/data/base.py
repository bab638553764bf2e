"""What a data set gives the trainer, and the seeded batch streams that feed it.

A registered data set (entry-point group ``gan_recipes.datasets``) is a function
``build(cfg: DataConfig, size: int, channels: int) -> ImageData``. Data sets that fit in memory
return all images as one tensor; the trainer moves it to the device once and draws batches by
indexing. File-backed ones return a ``torch.utils.data.Dataset`` read through a DataLoader.

Batch ``k`` of rank ``r`` is drawn with a generator seeded from ``(seed, r, k)``: batches are
random (with replacement), differ between ranks, and a resumed run draws exactly the batches
an uninterrupted run would, with no sampler state to save.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import UserError

# Streams drawn per step from stream_generator: the batch indices, the generator's noise and codes,
# and the shifts of D's inputs (recipe.augment).
DATA_STREAM, NOISE_STREAM, AUGMENT_STREAM = 0, 1, 2
CONTRASTIVE_STREAM = 3  # InfoGAN-CR's image pairs (contrastive_term.ContrastiveTerm)
MORE_NOISE_STREAM = 4  # codes of the G updates that draw their own (g_steps > 1, fresh_codes): streams 4, 5, ...
INVARIANCE_STREAM = 99  # the second views of the real images (invariance_term.InvarianceTerm), past 4, 5, ...


@dataclass(frozen=True)
class Factors:
    """Ground-truth factors of variation a data set can draw images for (MIG and FactorVAE use them).

    names: one per factor; sample(n, generator): (n, F) long factor indices, each drawn uniformly;
    images(factors): (n, C, S, S) float in [-1, 1] for those factors, at the data set's size and channels.
    """

    names: tuple[str, ...]
    sample: Callable[[int, torch.Generator | None], torch.Tensor]
    images: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ImageData:
    """A data set as the trainer sees it; exactly one of ``images`` and ``dataset`` is set.

    images: (N, C, S, S), uint8 in [0, 255] or float in [-1, 1], held in memory.
    dataset: items ``(image, label)`` with image (C, S, S) float in [-1, 1] (file-backed sets).
    labels: (N,) long where the data set has labels (for evaluation only), else None.
    factors: where the data set knows the factors its images are drawn from (for evaluation), else None.
    """

    name: str
    images: torch.Tensor | None = None
    dataset: Dataset | None = None
    labels: torch.Tensor | None = None
    factors: Factors | None = None

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.dataset)  # type: ignore[arg-type]


def stream_generator(seed: int, rank: int, step: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator for one (seed, rank, step, stream): independent streams, reproducible anywhere."""
    digest = hashlib.blake2b(f"{seed}/{rank}/{step}/{stream}".encode(), digest_size=8).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def batch_indices(n: int, batch_size: int, seed: int, rank: int, step: int) -> torch.Tensor:
    """(batch_size,) long indices into a data set of n items for one step of one rank."""
    return torch.randint(n, (batch_size,), generator=stream_generator(seed, rank, step, DATA_STREAM))


class StepBatchSampler(Sampler[list[int]]):
    """Endless batches of indices for steps start, start + 1, ... (see :func:`batch_indices`)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, start: int) -> None:
        self.n, self.batch_size, self.seed, self.rank, self.start = n, batch_size, seed, rank, start

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while True:
            yield batch_indices(self.n, self.batch_size, self.seed, self.rank, step).tolist()
            step += 1


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float [-1, 1]; float images pass through."""
    return images.float().mul_(2.0 / 255.0).sub_(1.0) if images.dtype == torch.uint8 else images


def batches(
    data: ImageData,
    batch_size: int,
    seed: int,
    rank: int,
    start: int,
    device: torch.device,
    num_workers: int = 0,
) -> Iterator[torch.Tensor]:
    """Endless float batches (batch_size, C, S, S) in [-1, 1] on ``device``, for steps start, start + 1, ..."""
    if len(data) == 0:
        raise UserError(f"data set {data.name!r} is empty")
    if data.images is not None:
        images = data.images.to(device)
        step = start
        while True:
            index = batch_indices(len(images), batch_size, seed, rank, step).to(device)
            yield to_unit_range(images[index])
            step += 1
    loader = DataLoader(
        data.dataset,  # type: ignore[arg-type]
        batch_sampler=StepBatchSampler(len(data), batch_size, seed, rank, start),
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
    )
    try:
        for images, _ in loader:
            yield images.to(device, non_blocking=True)
    except UserError as exc:  # from a worker, re-raised by torch with the worker's traceback as the message
        raise UserError(_worker_message(exc)) from None


def _worker_message(exc: UserError) -> str:
    """A UserError's own one-line message, also when a DataLoader worker raised it: torch then re-raises
    ``UserError("Caught UserError in DataLoader worker process 0.\\nOriginal Traceback ...")`` whose last
    line is ``gan_infogan_plugin.errors.UserError: <message>``."""
    text = str(exc).strip()
    return text.splitlines()[-1].split(": ", 1)[-1] if "\n" in text else text


def fit_images(images: torch.Tensor, size: int, channels: int, name: str, chunk: int = 4096) -> torch.Tensor:
    """(N, C, H, W) images to (N, channels, size, size), keeping the dtype (uint8 or float).

    Three channels become one by ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B); one becomes three by
    repetition. Other sizes are resized with antialiased bilinear interpolation.
    """
    n, c, h, w = images.shape
    if c != channels and not (c, channels) in ((3, 1), (1, 3)):
        raise UserError(f"data set {name!r} has {c} channels and the model wants {channels}: set model.channels")
    if c == channels and h == w == size:
        return images
    out = torch.empty((n, channels, size, size), dtype=images.dtype)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for i in range(0, n, chunk):
        x = images[i : i + chunk].float()
        if c == 3 and channels == 1:
            x = (x * luma).sum(1, keepdim=True)
        elif c == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if (h, w) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i : i + chunk] = x.round().clamp_(0, 255) if images.dtype == torch.uint8 else x.clamp_(-1, 1)
    return out


def check_options(name: str, options: dict, allowed: dict[str, type]) -> dict:
    """``data.options`` checked against the option names and types a data set takes."""
    for key, value in options.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise UserError(f"data.options.{key}: data set {name!r} takes no option {key!r} (options: {known})")
        if type(value) is not allowed[key]:
            raise UserError(f"data.options.{key}: expected {allowed[key].__name__}, got {value!r}")
    return options
