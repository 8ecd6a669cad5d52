"""PostgreSQL access of the request handlers: one statement, one round trip, per write.

Each write is a single statement (a data-modifying CTE) that changes its row and inserts its
outbox event together, run on an autocommit connection: PostgreSQL runs one statement as one
transaction, so the row and its event commit together or not at all, and the answer is sent
only after that commit (with ``synchronous_commit`` on, after the WAL flush): acknowledged
means durable. The event payload is built here from the event model (one format for every
event); a view of a missing image updates no row, so its outbox INSERT selects nothing.

Errors are translated for the handlers: a foreign key violation names the missing entity
(404), class 22 (data exception, e.g. a value PostgreSQL cannot store) is the client's (422),
a lost connection or an exhausted pool is 503.
"""

from __future__ import annotations

import asyncio
import json
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gourmetgram.api.outbox import event_key, event_payload
from gourmetgram.common import names
from gourmetgram.common.db import libpq_url
from gourmetgram.common.events import PlatformEvent


class NotFound(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.message = f"{what} not found"


class Unavailable(Exception):
    """The database cannot be reached (503)."""


class BadData(Exception):
    """PostgreSQL refused a value (SQLSTATE class 22): the client's fault (422)."""


_FK_TARGETS = (("image_id", "Image"), ("comment_id", "Comment"), ("user_id", "User"))


def _fk_message(exc: psycopg.errors.ForeignKeyViolation) -> str:
    constraint = exc.diag.constraint_name or ""
    for column, what in _FK_TARGETS:
        if column in constraint:
            return what
    return "Referenced entity"


async def _alive(conn: psycopg.AsyncConnection[Any]) -> None:
    """Pool check without a round trip: an idle connection whose socket is readable was closed
    by the server (restart, terminate); it is discarded instead of failing a request."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        await conn.close()  # closed, so the pool discards it (an open one would go back to the pool)
        raise psycopg.OperationalError("server closed the connection")


def make_pool(url: str, size: int, timeout: float) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        libpq_url(url),
        min_size=size,
        max_size=size,
        timeout=timeout,
        open=False,
        check=_alive,
        kwargs={
            "autocommit": True,
            "row_factory": namedtuple_row,
            "connect_timeout": max(1, int(timeout)),
            "application_name": "gourmetgram-api",
        },
        name="gourmetgram-api",
    )


@dataclass
class Store:
    pool: AsyncConnectionPool
    _checking: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise Unavailable(str(exc)) from None
        except psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound(_fk_message(exc)) from None
        except psycopg.DataError as exc:
            raise BadData(exc.sqlstate or "22000") from None
        except psycopg.OperationalError as exc:
            # The pool discards this broken connection; the idle ones are likely broken too
            # (server restart): check them in the background rather than fail more requests.
            if self._checking is None or self._checking.done():
                self._checking = asyncio.create_task(self.pool.check())
            raise Unavailable(type(exc).__name__) from None

    async def fetch_one(self, sql: str, params: dict[str, Any]) -> Any:
        async with self.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone()

    async def write_with_event(self, sql: str, params: dict[str, Any], event: PlatformEvent) -> Any:
        """Run a CTE statement whose ``o`` part inserts the outbox row from %(e_*)s parameters."""
        params = {
            **params,
            "e_id": event.event_id,
            "e_topic": names.TOPIC_BY_EVENT_TYPE[event.event_type],
            "e_key": event_key(event),
            "e_payload": json.dumps(event_payload(event), separators=(",", ":")),
        }
        return await self.fetch_one(sql, params)


def outbox_insert(source: str) -> str:
    """The outbox part of a write CTE: one event row per row of ``source``."""
    return (
        "INSERT INTO event_outbox (event_id, topic, key, payload) "
        f"SELECT %(e_id)s, %(e_topic)s, %(e_key)s, CAST(%(e_payload)s AS jsonb) FROM {source}"
    )


VIEW_SQL = (
    "WITH v AS (UPDATE images SET views = views + 1 WHERE id = %(image_id)s RETURNING views), "
    f"o AS ({outbox_insert('v')}) SELECT views FROM v"
)
COMMENT_SQL = (
    "WITH c AS (INSERT INTO comments (id, image_id, user_id, content, created_at) "
    "VALUES (%(id)s, %(image_id)s, %(user_id)s, %(content)s, %(created_at)s) RETURNING id), "
    f"o AS ({outbox_insert('c')}) SELECT id FROM c"
)
FLAG_SQL = (
    "WITH f AS (INSERT INTO flags (id, user_id, image_id, comment_id, reason, created_at) "
    "VALUES (%(id)s, %(user_id)s, %(image_id)s, %(comment_id)s, %(reason)s, %(created_at)s) RETURNING id), "
    f"o AS ({outbox_insert('f')}) SELECT id FROM f"
)
IMAGE_SQL = (
    "WITH i AS (INSERT INTO images (id, user_id, s3_url, s3_key, content_type, size_bytes, caption, category, "
    "uploaded_at) VALUES (%(id)s, %(user_id)s, %(s3_url)s, %(s3_key)s, %(content_type)s, %(size_bytes)s, "
    "%(caption)s, %(category)s, %(uploaded_at)s) RETURNING views), "
    f"o AS ({outbox_insert('i')}) SELECT views FROM i"
)
USER_INSERT_SQL = (
    "INSERT INTO users (username) VALUES (%(username)s) ON CONFLICT (username) DO NOTHING "
    "RETURNING id, username, created_at"
)
# A separate statement: its snapshot sees a row that a concurrent INSERT committed meanwhile.
USER_SELECT_SQL = "SELECT id, username, created_at FROM users WHERE username = %(username)s"
USER_EXISTS_SQL = "SELECT 1 FROM users WHERE id = %(id)s"
OUTBOX_HEALTH_SQL = (
    "SELECT count(*) AS backlog, EXTRACT(EPOCH FROM now() - min(created_at)) AS oldest "
    "FROM event_outbox WHERE sent_at IS NULL"
)
