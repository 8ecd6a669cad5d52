"""Image sources: Food-11 on disk (indexed once) or a small generated sample set.

The Food-11 layout is the lab's: ``<root>/<split>/class_00 .. class_10/<i>_<n>.jpg``, the
category is ``names.FOOD11_CLASSES[i]``. Without the dataset, a deterministic sample set of
real JPEGs (drawn with Pillow, a few per class) keeps the generator working offline;
``gourmetgram-generator --make-sample DIR`` writes that set in the same layout.
"""

from __future__ import annotations

import colorsys
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from gourmetgram.common import names

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
SAMPLE_PER_CLASS = 3
SAMPLE_SIZE = 160


@dataclass(frozen=True)
class ImageRef:
    category: str
    filename: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


def index_dataset(root: str | Path) -> list[ImageRef]:
    """Every image under root/<split>/class_XX, read once with scandir (no per-upload walk)."""
    root = Path(root)
    refs: list[ImageRef] = []
    if not root.is_dir():
        return refs
    for split in names.FOOD11_SPLITS:
        for index, category in enumerate(names.FOOD11_CLASSES):
            class_dir = root / split / names.food11_class_dir(index)
            if not class_dir.is_dir():
                continue
            with os.scandir(class_dir) as entries:
                for entry in entries:
                    if entry.is_file() and entry.name.lower().endswith(SUFFIXES):
                        refs.append(ImageRef(category, entry.name, path=Path(entry.path)))
    refs.sort(key=lambda r: str(r.path))
    return refs


def sample_image(class_index: int, n: int) -> bytes:
    """A deterministic JPEG for (class, n): a class-coloured plate with a few 'food' shapes."""
    rng = random.Random(class_index * 1000 + n)
    hue = class_index / len(names.FOOD11_CLASSES)
    bg = tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.35, 0.95))
    img = Image.new("RGB", (SAMPLE_SIZE, SAMPLE_SIZE), bg)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    draw.ellipse((12, 12, SAMPLE_SIZE - 12, SAMPLE_SIZE - 12), fill=(245, 245, 240), outline=(180, 180, 175))
    for _ in range(5 + n):
        x, y = rng.randint(40, SAMPLE_SIZE - 60), rng.randint(40, SAMPLE_SIZE - 60)
        r = rng.randint(8, 22)
        color = tuple(int(c * 255) for c in colorsys.hsv_to_rgb((hue + rng.uniform(-0.08, 0.08)) % 1, 0.8, 0.8))
        draw.ellipse((x, y, x + r, y + r), fill=color)  # type: ignore[arg-type]
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def sample_set(per_class: int = SAMPLE_PER_CLASS) -> list[ImageRef]:
    return [
        ImageRef(category, f"{i}_{n}.jpg", data=sample_image(i, n))
        for i, category in enumerate(names.FOOD11_CLASSES)
        for n in range(per_class)
    ]


def make_sample(root: str | Path, per_class: int = SAMPLE_PER_CLASS, split: str = "training") -> int:
    """Write the sample set as root/<split>/class_XX/<i>_<n>.jpg; returns the number of files."""
    count = 0
    for i, _ in enumerate(names.FOOD11_CLASSES):
        class_dir = Path(root) / split / names.food11_class_dir(i)
        class_dir.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            (class_dir / f"{i}_{n}.jpg").write_bytes(sample_image(i, n))
            count += 1
    return count


def load_images(dataset_path: str | Path) -> tuple[list[ImageRef], str]:
    """Food-11 from dataset_path when it has images, else the generated sample set."""
    refs = index_dataset(dataset_path)
    if refs:
        return refs, "food11"
    return sample_set(), "sample"
