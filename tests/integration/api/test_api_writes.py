"""API writes land in Postgres, MinIO and the right topics; validation errors; no orphans;
exact view counts with two uvicorn workers."""

from __future__ import annotations

import concurrent.futures
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gourmetgram.common import names
from tests.integration.api.apihelpers import (
    MAX_UPLOAD,
    image_insert_refused,
    jpeg_bytes,
    make_user,
    outbox_ids,
    read_topics,
    upload,
    wait_sent,
)

pytestmark = pytest.mark.integration
OFFSET = re.compile(r"[+-]\d\d:\d\d$")


def test_writes_land_in_postgres_minio_and_topics(
    client: httpx.Client, engine: Any, s3: Any, kafka_bootstrap: str
) -> None:
    user_id = make_user(client)
    data = jpeg_bytes()
    r = upload(client, user_id, caption="pasta night", category="Noodles/Pasta", data=data)
    assert r.status_code == 200, r.text
    image = r.json()
    image_id = image["id"]
    assert image["views"] == 0 and image["category"] == "Noodles/Pasta" and image["caption"] == "pasta night"
    assert set(image) >= {"id", "user_id", "s3_url", "caption", "category", "views", "uploaded_at"}

    # MinIO: key derived from the image id, right content type and bytes
    key = f"images/{image_id}.jpg"
    assert image["s3_url"].endswith(f"/{names.BUCKET_IMAGES}/{key}")
    obj = s3.get_object(Bucket=names.BUCKET_IMAGES, Key=key)
    assert obj["ContentType"] == "image/jpeg"
    assert obj["Body"].read() == data

    assert client.post(f"/images/{image_id}/view").json() == {"status": "ok", "views": 1}
    c = client.post("/comments/", json={"image_id": image_id, "user_id": user_id, "content": "yum"})
    assert c.status_code == 200, c.text
    comment_id = c.json()["id"]
    f1 = client.post("/flags/", json={"user_id": user_id, "image_id": image_id, "reason": "spam"})
    f2 = client.post("/flags/", json={"user_id": user_id, "comment_id": comment_id, "reason": "rude"})
    assert f1.status_code == 200 and f2.status_code == 200
    assert f2.json()["image_id"] is None

    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT user_id, views, s3_key, content_type, size_bytes FROM images WHERE id = :i"), {"i": image_id}
        ).one()
        assert (str(row.user_id), row.views, row.s3_key, row.content_type, row.size_bytes) == (
            user_id,
            1,
            key,
            "image/jpeg",
            len(data),
        )
        assert conn.execute(text("SELECT count(*) FROM comments WHERE image_id = :i"), {"i": image_id}).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM flags WHERE user_id = :u"), {"u": user_id}).scalar() == 2

    ids = outbox_ids(engine, "payload->>'image_id' = :i OR payload->>'comment_id' = :c", i=image_id, c=comment_id)
    assert len(ids) == 5  # upload, view, comment, image flag, comment flag
    wait_sent(engine, ids, timeout=60)
    found = read_topics(kafka_bootstrap, names.EVENT_TOPICS, set(ids))
    assert set(found) == set(ids)
    by_type = {}
    for event_id, copies in found.items():
        assert len(copies) == 1, f"event {event_id} delivered {len(copies)} times"
        ev = copies[0]
        assert ev["_topic"] == names.TOPIC_BY_EVENT_TYPE[ev["event_type"]]
        by_type.setdefault(ev["event_type"], []).append(ev)
    up = by_type["upload"][0]
    assert set(up) >= {"event_id", "event_type", "image_id", "user_id", "category", "caption", "uploaded_at", "s3_url"}
    assert up["_key"] == image_id and OFFSET.search(up["uploaded_at"])
    view = by_type["view"][0]
    assert view["image_id"] == image_id and OFFSET.search(view["viewed_at"]) and view["_key"] == image_id
    com = by_type["comment"][0]
    assert com["comment_id"] == comment_id and com["content"] == "yum" and OFFSET.search(com["created_at"])
    flags = {(f["image_id"], f["comment_id"]) for f in by_type["flag"]}
    assert flags == {(image_id, None), (None, comment_id)}


def test_create_user_is_idempotent_and_race_free(client: httpx.Client, api: str) -> None:
    name = f"race{uuid.uuid4().hex[:10]}"

    def create(_: int) -> tuple[int, str]:
        r = httpx.post(f"{api}/users/", json={"username": name}, timeout=30)
        return r.status_code, r.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(16)))
    assert {code for code, _ in results} == {200}
    assert len({uid for _, uid in results}) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"username": "ab"}, "username must be 3-64 characters"),
        ({"username": "bad name"}, "username must be"),
        ({}, "Field required"),
    ],
)
def test_username_rules_422(client: httpx.Client, body: dict[str, Any], message: str) -> None:
    r = client.post("/users/", json=body)
    assert r.status_code == 422
    assert message in r.json()["detail"][0]["msg"]


def test_error_statuses_and_messages(client: httpx.Client, engine: Any) -> None:
    user_id = make_user(client)
    image_id = upload(client, user_id).json()["id"]
    missing = str(uuid.uuid4())

    r = client.post("/flags/", json={"user_id": user_id, "reason": "x"})
    assert (r.status_code, r.json()["detail"]) == (400, "Must flag either an image or a comment")
    r = client.post("/flags/", json={"user_id": user_id, "comment_id": missing, "reason": "x"})
    assert (r.status_code, r.json()["detail"]) == (404, "Comment not found")
    r = client.post("/flags/", json={"user_id": missing, "image_id": image_id, "reason": "x"})
    assert (r.status_code, r.json()["detail"]) == (404, "User not found")
    r = client.post("/comments/", json={"image_id": missing, "user_id": user_id, "content": "hi"})
    assert (r.status_code, r.json()["detail"]) == (404, "Image not found")
    r = client.post("/comments/", json={"image_id": image_id, "user_id": user_id, "content": "  "})
    assert r.status_code == 422 and "content must not be empty" in r.json()["detail"][0]["msg"]
    r = client.post(f"/images/{missing}/view")
    assert (r.status_code, r.json()["detail"]) == (404, "Image not found")
    assert client.post("/images/not-a-uuid/view").status_code == 422
    r = client.post("/upload/", data={"user_id": "nope"}, files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")})
    assert r.status_code == 422
    # nothing was written for the failed requests
    assert outbox_ids(engine, "payload->>'image_id' = :m OR payload->>'comment_id' = :m", m=missing) == []


def _keys(s3: Any) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=names.BUCKET_IMAGES, Prefix="images/")
    return {o["Key"] for p in pages for o in p.get("Contents", [])}


def test_upload_checks_before_storage(client: httpx.Client, s3: Any) -> None:
    user_id = make_user(client)
    before = _keys(s3)
    r = upload(client, str(uuid.uuid4()))
    assert (r.status_code, r.json()["detail"]) == (404, "User not found")
    r = client.post(
        "/upload/", data={"user_id": user_id}, files={"file": ("x.jpg", b"GIF89a" + b"\0" * 64, "image/jpeg")}
    )
    assert r.status_code == 415 and "JPEG, PNG or WebP" in r.json()["detail"]
    # every 422 has the validation shape: a list of {loc, msg, type}
    r = client.post("/upload/", data={"user_id": user_id}, files={"file": ("x.jpg", jpeg_bytes()[:40], "image/jpeg")})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"loc": ["body", "file"], "msg": "File is not a valid JPEG image", "type": "value_error"}
    ]
    r = client.post("/upload/", data={"user_id": user_id}, files={"file": ("x.jpg", b"", "image/jpeg")})
    assert (r.status_code, r.json()["detail"][0]["msg"]) == (422, "File is empty")
    big = jpeg_bytes() + b"\0" * MAX_UPLOAD
    r = client.post("/upload/", data={"user_id": user_id}, files={"file": ("x.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and f"limit is {MAX_UPLOAD} bytes" in r.json()["detail"]
    assert _keys(s3) == before


def test_no_orphan_object_when_db_write_fails(client: httpx.Client, engine: Any, s3: Any, unique: str) -> None:
    marker = f"fail-{unique}"
    with image_insert_refused(engine, marker, "forced failure for test"):
        user_id = make_user(client)
        before = _keys(s3)
        r = upload(client, user_id, caption=marker)
        assert r.status_code == 500
        assert "forced failure" not in r.text and r.json()["detail"] == "Internal server error"
        assert _keys(s3) == before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM images WHERE caption = :c"), {"c": marker}).scalar() == 0
        assert upload(client, user_id, caption="fine").status_code == 200


def test_concurrent_views_are_exact_with_two_workers(
    client: httpx.Client, api: str, api_proc: Any, engine: Any
) -> None:
    assert api_proc.log_path.read_text().count("api started") == 2  # two uvicorn worker processes
    image_id = upload(client, make_user(client)).json()["id"]
    n = 300
    with (
        httpx.Client(base_url=api, timeout=30, limits=httpx.Limits(max_connections=16)) as c,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        codes = list(pool.map(lambda _: c.post(f"/images/{image_id}/view").status_code, range(n)))
    assert codes.count(200) == n
    with engine.connect() as conn:
        assert conn.execute(text("SELECT views FROM images WHERE id = :i"), {"i": image_id}).scalar() == n
    assert len(outbox_ids(engine, "topic = :t AND payload->>'image_id' = :i", t=names.TOPIC_VIEWS, i=image_id)) == n


def test_health_reports_components(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["checks"] == {"database": "ok", "broker": "ok", "s3": "ok"}
    assert "backlog" in body["outbox"] and body["kafka_enabled"] is True
    assert client.get("/docs").status_code == 200
