"""Image files on disk: any folder of images (searched recursively), read lazily through a DataLoader."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import UserError
from ..recipes import DataConfig
from .base import ImageData, check_options


class CenterSquare:
    """Centre crop to ``crop`` x ``crop`` pixels, or to the largest centred square when ``crop`` is 0."""

    def __init__(self, crop: int = 0) -> None:
        self.crop = crop

    def __call__(self, image: Image.Image) -> Image.Image:
        side = self.crop or min(image.size)
        return TF.center_crop(image, [side, side])


class ImageFiles(Dataset):
    """Every image under ``root`` in sorted path order; items are ``(image, 0)``.

    image: (channels, size, size) float in [-1, 1], grey (``channels=1``) or RGB, centre-cropped
    (see :class:`CenterSquare`) then resized with antialiasing.
    """

    def __init__(self, root: str | Path, size: int, channels: int, crop: int = 0) -> None:
        self.root = Path(root)
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        self.mode = "L" if channels == 1 else "RGB"
        self.transform = transforms.Compose(
            [
                CenterSquare(crop),
                transforms.Resize(size, antialias=True),
                transforms.ToTensor(),
                transforms.Normalize([0.5] * channels, [0.5] * channels),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = self.files[index]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert(self.mode)), 0
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read the image: {exc}") from None


def image_files(cfg: DataConfig, root: Path, size: int, channels: int, name: str, how_to_get: str) -> ImageData:
    """An :class:`ImageFiles` set under ``root`` (``cfg.limit`` keeps the first files), or a UserError."""
    files = ImageFiles(root, size, channels, cfg.crop)
    if not files.files:
        state = "has no image files" if root.is_dir() else "does not exist"
        raise UserError(
            f"{name}: {root} {state} (expected {', '.join(IMG_EXTENSIONS[:4])}... files, in subfolders or not); {how_to_get}"
        )
    dataset = Subset(files, range(min(cfg.limit, len(files)))) if cfg.limit else files
    return ImageData(name, dataset=dataset)


def image_folder(cfg: DataConfig, size: int, channels: int) -> ImageData:
    """The ``image-folder`` data set: every image under ``data.root``; no options, no download."""
    check_options("image-folder", cfg.options, {})
    how = "put the images there or point data.root at their folder"
    return image_files(cfg, Path(cfg.root), size, channels, "image-folder", how)
