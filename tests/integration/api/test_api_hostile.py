"""Hostile input stays in the 4xx range, on a connection that stays open: NUL bytes and
unpaired surrogates in every text field, a decompression-bomb PNG, usernames with blanks, and
a value PostgreSQL refuses (DataError) after validation let it through."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.api.apihelpers import image_insert_refused, jpeg_bytes, make_user, upload
from tests.integration.api.test_api_writes import _keys
from tests.unit.api.test_api_imaging import png_declaring

pytestmark = pytest.mark.integration


def _raw_posts(api: str, requests: list[tuple[str, str]]) -> list[tuple[int, Any]]:
    """POST raw JSON texts (escapes such as \\ud800 kept verbatim) on ONE keep-alive connection."""
    url = urlsplit(api)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    out = []
    try:
        for path, body in requests:
            conn.request("POST", path, body=body.encode(), headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            out.append((r.status, json.loads(r.read())))
    finally:
        conn.close()
    return out


def test_nul_and_lone_surrogates_are_422_and_keep_the_connection(client: httpx.Client, api: str) -> None:
    user_id = make_user(client)
    image_id = upload(client, user_id).json()["id"]
    ids = f'"image_id":"{image_id}","user_id":"{user_id}"'

    def body(extra: str) -> str:
        return "{" + ids + "," + extra + "}"

    hostile = [
        ("/comments/", body('"content":"yum\\u0000"'), "content must not contain NUL bytes"),
        ("/comments/", body('"content":"yum\\ud800"'), "unpaired surrogate"),
        ("/comments/", body('"content":"\\udfffyum"'), "unpaired surrogate"),
        ("/flags/", body('"reason":"spam\\u0000"'), "reason must not contain NUL bytes"),
        ("/flags/", body('"reason":"spam\\ud800"'), "unpaired surrogate"),
        ("/users/", '{"username":"abc\\ud800"}', "username must be"),
        ("/users/", '{"username":"abc\\u0000"}', "username must be"),
        ("/comments/", '{"image_id":"\\ud800","user_id":"' + user_id + '","content":"x"}', "valid string"),
    ]
    answers = _raw_posts(api, [(path, body) for path, body, _ in hostile] + [("/users/", '{"username":"after1"}')])
    for (path, body, message), (status, reply) in zip(hostile, answers, strict=False):
        assert status == 422, (path, body, status, reply)
        assert message in reply["detail"][0]["msg"], (path, body, reply)
    assert answers[-1][0] == 200  # the same connection still serves requests

    # (a multipart field cannot carry a lone surrogate: its bytes are not UTF-8 to begin with)
    for field in ("caption", "category"):
        r = client.post(
            "/upload/",
            data={"user_id": user_id, field: "nice\x00"},
            files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")},
        )
        assert r.status_code == 422, (field, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", field] and "NUL bytes" in r.text


def test_usernames_are_trimmed_consistently(client: httpx.Client) -> None:
    name = f"trim{uuid.uuid4().hex[:8]}"
    plain = client.post("/users/", json={"username": name}).json()
    for variant in (f"{name}\n", f"  {name}", f"\t{name} \r\n"):
        r = client.post("/users/", json={"username": variant})
        assert r.status_code == 200 and r.json() == plain, (variant, r.text)
    assert client.post("/users/", json={"username": f"ab\n{name}"}).status_code == 422


def test_decompression_bomb_is_413_without_decoding(client: httpx.Client, s3: Any) -> None:
    user_id = make_user(client)
    before = _keys(s3)
    bomb = png_declaring(30000, 30000, padding=16_000_000)
    assert len(bomb) < 40_000
    r = client.post("/upload/", data={"user_id": user_id}, files={"file": ("x.png", bomb, "image/png")})
    assert r.status_code == 413 and "pixels" in r.json()["detail"], r.text
    r = client.post(
        "/upload/", data={"user_id": user_id}, files={"file": ("x.png", png_declaring(9000, 9000), "image/png")}
    )
    assert r.status_code == 413, r.text  # under Pillow's own guard, over ours (MAX_IMAGE_PIXELS)
    assert _keys(s3) == before


def test_database_data_error_is_422_and_leaves_no_orphan(client: httpx.Client, engine: Any, s3: Any) -> None:
    marker = f"bad-{uuid.uuid4().hex[:8]}"
    with image_insert_refused(engine, marker, "refused", errcode="22023"):
        user_id = make_user(client)
        before = _keys(s3)
        r = upload(client, user_id, caption=marker)
        assert r.status_code == 422, r.text
        assert "refused" not in r.text and r.json()["detail"][0]["msg"] == "a value cannot be stored"
        assert _keys(s3) == before
