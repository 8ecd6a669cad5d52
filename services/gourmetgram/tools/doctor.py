"""``gourmetgram doctor``: is the platform healthy? A verdict first, the details after.

Each check answers ``ok``, ``warn`` or ``fail`` (or ``n/a`` where its source is absent, e.g. no
systemd on a test controller); the verdict is the worst of them and the exit code is 1 on a
failure. The checks read the real sources, never a cached status:

- units: every installed ``gourmetgram-*`` unit and the platform's servers are active;
- consumers: for the stream consumer and inference groups, the events waiting (high watermark
  minus committed offset) and whether the group has members; events waiting for a group with no
  members is a stopped consumer;
- outbox: rows the relay has not published, and the age of the oldest one (a relay that does not
  keep up lets it grow);
- dead letters: messages in ``gourmetgram.dead_letter`` within the last hour;
- disk: use of the file systems that hold the data;
- model: the published artifacts' metadata (which model inference loads in model mode).

Thresholds live in :class:`gourmetgram.common.settings.DoctorSettings` (``DOCTOR_*``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy import text

from gourmetgram.common import db, names
from gourmetgram.common.settings import DoctorSettings

Status = Literal["ok", "warn", "fail", "n/a"]
_RANK: dict[Status, int] = {"n/a": 0, "ok": 1, "warn": 2, "fail": 3}
# Servers of the platform, checked where installed (a host of a multi-host inventory has some).
PLATFORM_UNITS = (
    "postgresql.service",
    "redis-server.service",
    "kafka.service",
    "redpanda.service",
    "minio.service",
    "airflow-api-server.service",
    "airflow-scheduler.service",
    "airflow-dag-processor.service",
    "nginx.service",
)
# Which topics each consumer group reads.
GROUP_TOPICS: dict[str, tuple[str, ...]] = {
    names.CONSUMER_GROUP_STREAM: names.EVENT_TOPICS,
    names.CONSUMER_GROUP_INFERENCE: (names.TOPIC_MODERATION_REQUESTS,),
}


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    culprits: list[str] = field(default_factory=list)  # what the verdict line names (e.g. the units down)


def verdict(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_RANK.__getitem__, default="n/a")


# --- units ---------------------------------------------------------------------------------------
def check_units(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> Check:
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return Check("units", "n/a", "systemd is not running here")
    listed = run(
        ["systemctl", "list-unit-files", "--no-legend", "--plain", "--type=service", "gourmetgram-*", *PLATFORM_UNITS],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    units = sorted({u for u in listed if u.endswith(".service") and "@" not in u})
    if not units:
        return Check("units", "fail", "no platform unit is installed")
    states = dict(
        zip(
            units,
            run(["systemctl", "is-active", *units], capture_output=True, text=True, check=False).stdout.split(),
            strict=False,
        )
    )
    down = {u: s for u, s in states.items() if s != "active"}
    if down:
        summary = f"{len(down)} of {len(units)} units not active: " + ", ".join(down)
        return Check("units", "fail", summary, states, culprits=[u.removesuffix(".service") for u in down])
    return Check("units", "ok", f"{len(units)} units active", states)


# --- Kafka ---------------------------------------------------------------------------------------
def _waiting(consumer: Consumer, group_topics: tuple[str, ...]) -> dict[str, int]:
    """Events not yet committed by the consumer's group, per topic."""
    md = consumer.list_topics(timeout=10)
    parts = [TopicPartition(t, p) for t in group_topics if t in md.topics for p in md.topics[t].partitions]
    committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=10)} if parts else {}
    out: dict[str, int] = {}
    for tp in parts:
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        done = committed.get((tp.topic, tp.partition), -1)
        out[tp.topic] = out.get(tp.topic, 0) + high - (done if done >= 0 else low)
    return out


def check_consumers(
    bootstrap: str, settings: DoctorSettings, groups: dict[str, tuple[str, ...]] = GROUP_TOPICS
) -> list[Check]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = {g: f.result() for g, f in admin.describe_consumer_groups(list(groups), request_timeout=10).items()}
    checks = []
    for group, topics in groups.items():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            waiting = _waiting(c, topics)
        finally:
            c.close()
        desc = described[group]
        members = len(desc.members)
        lag = sum(waiting.values())
        details = {"state": str(desc.state.name), "members": members, "waiting": waiting}
        if lag and (members == 0 or desc.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD)):
            checks.append(Check(f"consumer {group}", "fail", f"stopped: {lag} events waiting, no member", details))
        elif lag > settings.doctor_lag_warn:
            checks.append(Check(f"consumer {group}", "warn", f"{lag} events behind, {members} member(s)", details))
        else:
            checks.append(Check(f"consumer {group}", "ok", f"{lag} events behind, {members} member(s)", details))
    return checks


def check_dead_letters(bootstrap: str, settings: DoctorSettings, topic: str = names.TOPIC_DEAD_LETTER) -> Check:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "gourmetgram-doctor", "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return Check("dead letters", "warn", f"topic {topic} missing")
        since_ms = int((time.time() - 3600) * 1000)
        starts = c.offsets_for_times([TopicPartition(topic, p, since_ms) for p in meta.partitions], timeout=10)
        last_hour = total = 0
        for tp in starts:
            low, high = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            total += high - low
            last_hour += high - tp.offset if tp.offset >= 0 else 0
    finally:
        c.close()
    details = {"last_hour": last_hour, "retained": total, "fail_at": settings.doctor_dead_letter_fail}
    if last_hour >= settings.doctor_dead_letter_fail:
        return Check("dead letters", "fail", f"{last_hour} dead-lettered in the last hour", details)
    if last_hour:
        return Check("dead letters", "warn", f"{last_hour} dead-lettered in the last hour", details)
    return Check("dead letters", "ok", f"none in the last hour ({total} retained)", details)


# --- PostgreSQL, disk, model ---------------------------------------------------------------------
def check_outbox(database_url: str, settings: DoctorSettings) -> Check:
    with db.engine_for(database_url).connect() as conn:
        row = conn.execute(
            text(f'SELECT count(*), min(created_at) FROM "{names.TABLE_OUTBOX}" WHERE sent_at IS NULL')
        ).one()
    unsent, oldest = int(row[0]), row[1]
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    details = {"unsent": unsent, "oldest_unsent_age_s": round(age, 1), "fail_after_s": settings.doctor_outbox_max_age}
    if unsent and age > settings.doctor_outbox_max_age:
        return Check("outbox", "fail", f"{unsent} events unpublished, oldest {age:.0f} s: relay behind", details)
    return Check("outbox", "ok", f"{unsent} events waiting for the relay", details)


def check_disk(settings: DoctorSettings) -> Check:
    used: dict[str, float] = {}
    for path in settings.doctor_disk_paths:
        if Path(path).exists():
            u = shutil.disk_usage(path)
            used[path] = round(100 * u.used / u.total, 1)
    worst = max(used.values(), default=0.0)
    summary = ", ".join(f"{p} {pct:.0f} %" for p, pct in used.items())
    if worst >= settings.doctor_disk_fail_percent:
        return Check("disk", "fail", summary, used)
    if worst >= settings.doctor_disk_warn_percent:
        return Check("disk", "warn", summary, used)
    return Check("disk", "ok", summary, used)


def check_model(s3: Any) -> Check:
    from gourmetgram.tools import stats

    published = stats.models(s3)
    meta = published["metadata"]
    if not meta:
        return Check("model", "warn", "no model published: inference answers in heuristic(_fallback) mode", published)
    return Check("model", "ok", f"published {meta.get('trained_at', '?')} ({published['location']})", published)


# --- all together --------------------------------------------------------------------------------
def run_checks(settings: DoctorSettings, s3: Any | None = None) -> list[Check]:
    checks = [check_units()]
    bootstrap = settings.kafka_bootstrap_servers
    database_url = settings.database_url.get_secret_value()
    for name, fn in (
        ("consumers", lambda: check_consumers(bootstrap, settings)),
        ("dead letters", lambda: [check_dead_letters(bootstrap, settings)]),
        ("outbox", lambda: [check_outbox(database_url, settings)]),
        ("model", lambda: [check_model(s3)] if s3 is not None else []),
    ):
        try:
            checks.extend(fn())
        except Exception as exc:  # a server that is down is a finding, not a crash of the doctor
            checks.append(Check(name, "fail", f"could not check: {type(exc).__name__}: {str(exc)[:200]}"))
    checks.append(check_disk(settings))
    return checks


def render(checks: list[Check], as_json: bool = False) -> str:
    v = verdict(checks)
    if as_json:
        return json.dumps({"verdict": v, "checks": [c.__dict__ for c in checks]}, indent=2, default=str)
    # The verdict line alone says what to look at: the failing checks, with the units that are down.
    bad = [f"{c.name} ({', '.join(c.culprits)})" if c.culprits else c.name for c in checks if c.status == "fail"]
    head = {
        "fail": f"VERDICT: FAIL ({len(bad)} of {len(checks)} checks: {', '.join(bad)})",
        "warn": "VERDICT: OK with warnings",
        "ok": "VERDICT: OK",
        "n/a": "VERDICT: nothing to check",
    }[v]
    lines = [head, ""]
    lines += [f"  {c.status.upper():5} {c.name:40} {c.summary}" for c in checks]
    return "\n".join(lines)


def main(as_json: bool = False) -> int:
    from gourmetgram.common.settings import S3Settings
    from gourmetgram.common.storage import s3_client

    settings = DoctorSettings()  # type: ignore[call-arg]
    try:
        s3 = s3_client(S3Settings(), connect_timeout=3, read_timeout=10)  # type: ignore[call-arg]
    except ValueError:
        s3 = None
    checks = run_checks(settings, s3)
    print(render(checks, as_json))
    return 1 if verdict(checks) == "fail" else 0
