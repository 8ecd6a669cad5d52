import io
import struct
import zlib

import pytest
from PIL import Image

from gourmetgram.api import imaging


def _encode(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "expected"), [("JPEG", imaging.JPEG), ("PNG", imaging.PNG), ("WEBP", imaging.WEBP)])
def test_detects_accepted_types_from_magic_bytes(fmt: str, expected: imaging.ImageType) -> None:
    data = _encode(fmt)
    assert imaging.detect_image_type(data[: imaging.MAGIC_BYTES_NEEDED]) == expected
    assert imaging.is_decodable(data, expected)


@pytest.mark.parametrize(
    "head",
    [
        b"GIF89a\x01\x00\x01\x00\x00\x00",
        b"%PDF-1.7\n....",
        b"hello world!",
        b"RIFF\x00\x00\x00\x00WAVE",  # RIFF but not WebP
        b"\xff\xd8",  # too short for JPEG
        b"",
    ],
)
def test_rejects_other_types(head: bytes) -> None:
    assert imaging.detect_image_type(head) is None


def test_extension_comes_from_content_not_name() -> None:
    assert imaging.detect_image_type(_encode("PNG")).extension == "png"
    assert imaging.JPEG.content_type == "image/jpeg"


def test_truncated_or_mislabelled_data_is_not_decodable() -> None:
    jpeg = _encode("JPEG")
    assert not imaging.is_decodable(jpeg[:20], imaging.JPEG)
    assert not imaging.is_decodable(_encode("PNG"), imaging.JPEG)


def png_declaring(width: int, height: int, padding: int = 0) -> bytes:
    """A structurally valid 1-bit greyscale PNG header declaring width×height (its IDAT is short)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * (1 + padding)))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_without_decoding() -> None:
    bomb = png_declaring(30000, 30000, padding=16_000_000)
    assert 10_000 < len(bomb) < 40_000
    assert imaging.detect_image_type(bomb[: imaging.MAGIC_BYTES_NEEDED]) == imaging.PNG
    # over Pillow's own 2x MAX_IMAGE_PIXELS (DecompressionBombError) and over ours
    assert imaging.inspect(bomb, imaging.PNG, 40_000_000) is imaging.Verdict.TOO_MANY_PIXELS
    # under Pillow's limits but over ours: our bound decides
    assert imaging.inspect(png_declaring(8000, 6000), imaging.PNG, 40_000_000) is imaging.Verdict.TOO_MANY_PIXELS
    assert imaging.inspect(png_declaring(8000, 6000), imaging.PNG, 50_000_000) is not imaging.Verdict.TOO_MANY_PIXELS


def test_inspect_accepts_real_images_under_the_bound() -> None:
    assert imaging.inspect(_encode("PNG"), imaging.PNG, 16 * 16) is imaging.Verdict.OK
    assert imaging.inspect(_encode("PNG"), imaging.PNG, 16 * 16 - 1) is imaging.Verdict.TOO_MANY_PIXELS
    assert imaging.inspect(_encode("JPEG")[:30], imaging.JPEG, 10**6) is imaging.Verdict.INVALID
