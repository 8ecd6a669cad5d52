"""The generator against a real API subprocess and a fresh database: bootstrap, rate, event mix,
restart with state recovered from Postgres, graceful SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gourmetgram.api.devserver import ApiProcess
from gourmetgram.common import db

pytestmark = pytest.mark.integration
RATE_PER_HOUR = 36_000.0  # 10 events/s


@pytest.fixture(scope="module")
def fresh_db(infra_env: dict[str, str]) -> Iterator[str]:
    name = f"gg_gen_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db.sqlalchemy_url(infra_env["GG_PG_ADMIN_URL"]), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = infra_env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    db.upgrade(url)
    yield url
    db.engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def api(fresh_db: str, kafka_bootstrap: str, s3_settings: Any, infra_env: dict[str, str]) -> Iterator[str]:
    with ApiProcess({**infra_env, "DATABASE_URL": fresh_db}, workers=1) as proc:
        yield proc.url


def _counts(url: str) -> dict[str, int]:
    with db.engine_for(url).connect() as conn:
        row = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM images) AS images, "
                "(SELECT count(*) FROM comments) AS comments, (SELECT count(*) FROM flags) AS flags, "
                "(SELECT coalesce(sum(views), 0) FROM images) AS views"
            )
        ).one()
    return dict(row._mapping)


def _start(api: str, url: str, tmp: Path, tag: str, *args: str, **env: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "gourmetgram-generator"
    full_env = {
        **os.environ,
        "DATABASE_URL": url,
        "GENERATOR_API_URL": api,
        "GENERATOR_ARRIVAL_RATE": str(RATE_PER_HOUR),
        "GENERATOR_INITIAL_USERS": "5",
        "GENERATOR_INITIAL_IMAGES": "8",
        "GENERATOR_STATS_INTERVAL": "2",
        "GENERATOR_DATASET_PATH": str(tmp / "no-dataset"),
        "GENERATOR_SEED": "11",
        **env,
    }
    log = (tmp / f"generator-{tag}.log").open("w")
    return subprocess.Popen([str(exe), *args], env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True)


def _field(line: str, key: str) -> str:
    m = re.search(rf"\b{key}=(\S+)", line)
    assert m, (key, line)
    return m.group(1)


def _line(log: str, msg: str) -> str:
    lines = [ln for ln in log.splitlines() if f'msg="{msg}"' in ln or f"msg={msg} " in ln]
    assert lines, f"no {msg!r} line in:\n{log[-3000:]}"
    return lines[-1]


def test_generator_bootstraps_and_keeps_the_rate(api: str, fresh_db: str, tmp_path_factory: Any) -> None:
    tmp = tmp_path_factory.mktemp("gen1")
    proc = _start(api, fresh_db, tmp, "first", "--duration", "8")
    assert proc.wait(90) == 0
    log = (tmp / "generator-first.log").read_text()
    boot = _line(log, "bootstrap done")
    assert (_field(boot, "users_created"), _field(boot, "images_created")) == ("5", "8")
    assert "source=sample" in _line(log, "generator starting")
    final = _line(log, "generator stopped")
    elapsed, ok = float(_field(final, "elapsed_s")), int(_field(final, "ok"))
    assert int(_field(final, "failed")) == 0
    expected = RATE_PER_HOUR / 3600 * elapsed
    # Poisson count: sd = sqrt(80) ~ 9; allow about 3 sd either side
    assert 0.65 * expected <= ok <= 1.35 * expected, (ok, expected, final)
    assert int(_field(final, "arrivals")) >= ok
    c = _counts(fresh_db)
    kinds = dict(kv.split(":") for kv in _field(final, "by_kind").split(","))
    assert c["views"] == int(kinds.get("view", 0))
    assert c["comments"] == int(kinds.get("comment", 0))
    assert c["users"] >= 5 and c["images"] >= 8
    assert int(kinds["view"]) > int(kinds.get("comment", 0))  # the mix is view-heavy
    assert len([ln for ln in log.splitlines() if "msg=stats" in ln]) >= 2


def test_restart_recovers_entities_and_uses_old_images(api: str, fresh_db: str, tmp_path_factory: Any) -> None:
    with db.engine_for(fresh_db).connect() as conn:
        before = {str(r.id): r.views for r in conn.execute(text("SELECT id, views FROM images"))}
    users_before = _counts(fresh_db)["users"]
    assert before, "needs the first test's images"
    tmp = tmp_path_factory.mktemp("gen2")
    proc = _start(api, fresh_db, tmp, "second", GENERATOR_SEED="12", GENERATOR_EVENT_MIX="view=0.9,comment=0.1")
    time.sleep(7)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    log = (tmp / "generator-second.log").read_text()
    rec = _line(log, "state recovered from database")
    assert int(_field(rec, "images")) == len(before) and int(_field(rec, "users")) == users_before
    boot = _line(log, "bootstrap done")
    assert (_field(boot, "users_created"), _field(boot, "images_created")) == ("0", "0")
    final = _line(log, "generator stopped")
    assert int(_field(final, "ok")) > 20 and int(_field(final, "failed")) == 0
    with db.engine_for(fresh_db).connect() as conn:
        after = {str(r.id): r.views for r in conn.execute(text("SELECT id, views FROM images"))}
    assert set(after) == set(before)  # no uploads in this mix
    touched = [i for i in before if after[i] > before[i]]
    assert len(touched) >= 3, "the restarted generator should view pre-restart images"
