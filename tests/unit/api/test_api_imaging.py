import io

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
