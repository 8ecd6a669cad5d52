"""Reading the real-time state the stream consumer keeps in Redis (lab step 4b).

Per image: sorted sets ``image:<id>:views`` / ``image:<id>:comments`` / ``image:<id>:flags``
(member = event id, score = event time in epoch seconds), counters ``image:<id>:total_*`` and
the hash ``image:<id>:metadata``. Window counts are computed on read with ZCOUNT over the
closed interval ``[t - W, t]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from gourmetgram.common import names
from gourmetgram.common.settings import RedisSettings


def redis_client(settings: RedisSettings) -> redis.Redis:
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=settings.redis_password.get_secret_value() if settings.redis_password else None,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
        retry_on_timeout=True,
        decode_responses=True,
    )


@dataclass(frozen=True, slots=True)
class RealtimeSignals:
    views_1min: int
    views_5min: int
    views_1hr: int
    comments_1min: int
    comments_5min: int
    comments_1hr: int
    total_views: int
    total_comments: int
    total_flags: int
    metadata: dict[str, str]


def read_signals(client: redis.Redis, image_id: str, at: float) -> RealtimeSignals:
    """All windows, totals and metadata of one image at epoch ``at``, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for key in (names.key_views(image_id), names.key_comments(image_id)):
        for window in (names.WINDOW_1MIN, names.WINDOW_5MIN, names.WINDOW_1HR):
            pipe.zcount(key, at - window, at)
    for kind in ("views", "comments", "flags"):
        pipe.get(names.key_total(image_id, kind))
    pipe.hgetall(names.key_metadata(image_id))
    res: list[Any] = pipe.execute()
    return RealtimeSignals(
        views_1min=int(res[0]),
        views_5min=int(res[1]),
        views_1hr=int(res[2]),
        comments_1min=int(res[3]),
        comments_5min=int(res[4]),
        comments_1hr=int(res[5]),
        total_views=int(res[6] or 0),
        total_comments=int(res[7] or 0),
        total_flags=int(res[8] or 0),
        metadata=dict(res[9] or {}),
    )
