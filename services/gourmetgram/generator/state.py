"""What the generator knows about: users, images and comments, recovered from Postgres.

Recovery uses read-only queries (most recent first, bounded), so a restarted generator keeps
acting on entities created before the restart (the reference forgot them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sqlalchemy import text

from gourmetgram.common.db import engine_for


@dataclass
class State:
    users: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    limit: int = 10_000

    def add(self, kind: str, entity_id: str) -> None:
        items: list[str] = getattr(self, kind)
        items.append(entity_id)
        if len(items) > self.limit:
            del items[: len(items) - self.limit]

    def pick_image(self, rng: random.Random) -> str | None:
        """Recency-biased: new posts get more attention, older ones keep some."""
        if not self.images:
            return None
        if rng.random() < 0.5:
            return rng.choice(self.images)
        return self.images[-1 - int(min(len(self.images), 50) * rng.random())]

    def pick(self, kind: str, rng: random.Random) -> str | None:
        items: list[str] = getattr(self, kind)
        return rng.choice(items) if items else None


_QUERIES = {
    "users": "SELECT id FROM users ORDER BY created_at DESC LIMIT :n",
    "images": "SELECT id FROM images ORDER BY uploaded_at DESC LIMIT :n",
    "comments": "SELECT id FROM comments ORDER BY created_at DESC LIMIT :n",
}


def load_state(database_url: str, limit: int, connect_timeout: float = 5.0) -> State:
    engine = engine_for(database_url, 1, connect_timeout)
    state = State(limit=limit)
    with engine.connect() as conn:
        conn.execute(text("SET TRANSACTION READ ONLY"))
        for kind, sql in _QUERIES.items():
            ids = [str(r[0]) for r in conn.execute(text(sql), {"n": limit})]
            ids.reverse()  # oldest first, newest last
            setattr(state, kind, ids)
        conn.rollback()
    return state
