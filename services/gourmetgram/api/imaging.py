"""Upload content checks: the type comes from the file's magic bytes, never from its name.

Decoding is bounded: :func:`inspect` reads only the header (dimensions) and the structure
(``verify``: chunk CRCs, markers), never the pixel data, and refuses an image that declares
more than ``max_pixels`` before anything else is parsed. So a 17 KB PNG that declares
30000×30000 costs a header read, not 900 M pixels of memory.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import Enum

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


class Verdict(Enum):
    OK = "ok"
    INVALID = "invalid"  # not parseable as the detected type -> 422
    TOO_MANY_PIXELS = "too_many_pixels"  # declared dimensions over the limit -> 413


def detect_image_type(head: bytes) -> ImageType | None:
    """JPEG, PNG or WebP from the first bytes of a file; None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(_PNG_MAGIC):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def inspect(data: bytes, expected: ImageType, max_pixels: int) -> Verdict:
    """Header and structure check without decoding pixels; the pixel count is bounded first."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard (warning above MAX_IMAGE_PIXELS, error above twice that)
            # is a second line behind ours: both end as TOO_MANY_PIXELS.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    return Verdict.TOO_MANY_PIXELS
                fmt = img.format
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Verdict.TOO_MANY_PIXELS
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError):
        # Pillow's parsers raise these on truncated or crafted files.
        return Verdict.INVALID
    return Verdict.OK if fmt == expected.name else Verdict.INVALID


def is_decodable(data: bytes, expected: ImageType, max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485) -> bool:
    return inspect(data, expected, max_pixels) is Verdict.OK
