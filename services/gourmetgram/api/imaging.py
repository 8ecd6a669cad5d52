"""Upload content checks: the type comes from the file's magic bytes, never from its name."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError


@dataclass(frozen=True)
class ImageType:
    name: str
    extension: str
    content_type: str


JPEG = ImageType("JPEG", "jpg", "image/jpeg")
PNG = ImageType("PNG", "png", "image/png")
WEBP = ImageType("WEBP", "webp", "image/webp")
ACCEPTED = (JPEG, PNG, WEBP)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAGIC_BYTES_NEEDED = 12


def detect_image_type(head: bytes) -> ImageType | None:
    """JPEG, PNG or WebP from the first bytes of a file; None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(_PNG_MAGIC):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def is_decodable(data: bytes, expected: ImageType) -> bool:
    """Pillow can parse the header and structure, and agrees with the detected type."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    return fmt == expected.name
