"""``gourmetgram doctor`` against the real loopback servers: each fault it must name gives a failing
verdict, and the verdict clears when the fault does (issue 17)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import text

from gourmetgram.common import db, names
from gourmetgram.common.settings import DoctorSettings
from gourmetgram.tools import doctor

pytestmark = pytest.mark.integration


def _topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        fut.result(30)


def _produce(bootstrap: str, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        p.produce(topic, value=f"m{i}".encode())
    assert p.flush(30) == 0


def _commit(c: Consumer, tp: TopicPartition) -> None:
    """Commit for the group; a new group's coordinator may still be loading (NOT_COORDINATOR)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            c.commit(offsets=[tp], asynchronous=False)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture()
def settings(infra_env: dict[str, str], migrated_db: str) -> DoctorSettings:
    return DoctorSettings()  # type: ignore[call-arg]


def test_stopped_consumer_fails_and_a_caught_up_one_passes(kafka_bootstrap: str, settings: DoctorSettings) -> None:
    topic, group = f"doctor-{uuid.uuid4().hex[:8]}", f"doctor-group-{uuid.uuid4().hex[:8]}"
    _topic(kafka_bootstrap, topic)
    _produce(kafka_bootstrap, topic, 5)
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        _commit(c, TopicPartition(topic, 0, 2))  # the group read 2, then stopped
        [check] = doctor.check_consumers(kafka_bootstrap, settings, {group: (topic,)})
        assert check.status == "fail", check
        assert check.details["waiting"] == {topic: 3} and check.details["members"] == 0
        assert "stopped" in check.summary
        _commit(c, TopicPartition(topic, 0, 5))  # caught up
        [check] = doctor.check_consumers(kafka_bootstrap, settings, {group: (topic,)})
        assert check.status == "ok", check
    finally:
        c.close()


def test_full_dead_letter_topic_fails(kafka_bootstrap: str, settings: DoctorSettings) -> None:
    topic = f"doctor-dlq-{uuid.uuid4().hex[:8]}"
    _topic(kafka_bootstrap, topic, partitions=3)
    assert doctor.check_dead_letters(kafka_bootstrap, settings, topic).status == "ok"
    _produce(kafka_bootstrap, topic, settings.doctor_dead_letter_fail - 1)
    warn = doctor.check_dead_letters(kafka_bootstrap, settings, topic)
    assert warn.status == "warn" and warn.details["last_hour"] == settings.doctor_dead_letter_fail - 1
    _produce(kafka_bootstrap, topic, 1)
    assert doctor.check_dead_letters(kafka_bootstrap, settings, topic).status == "fail"


def test_growing_outbox_fails(settings: DoctorSettings, migrated_db: str) -> None:
    engine = db.engine_for(migrated_db)
    event_id = uuid.uuid4()
    stale = datetime.now(UTC) - timedelta(seconds=settings.doctor_outbox_max_age + 60)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {names.TABLE_OUTBOX} (event_id, topic, key, payload, created_at)"
                " VALUES (:id, :topic, NULL, '{}'::jsonb, :at)"
            ),
            {"id": event_id, "topic": "doctor-test", "at": stale},
        )
    try:
        before = doctor.check_outbox(migrated_db, settings)
        assert before.status == "fail", before
        assert before.details["unsent"] >= 1 and before.details["oldest_unsent_age_s"] >= 60
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {names.TABLE_OUTBOX} WHERE event_id = :id"), {"id": event_id})
    after = doctor.check_outbox(migrated_db, settings)
    assert after.details["unsent"] == before.details["unsent"] - 1


def test_cli_prints_the_verdict_first_and_exits_1_on_failure(
    kafka_bootstrap: str, settings: DoctorSettings, s3: object, infra_env: dict[str, str]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gourmetgram.cli", "doctor"], capture_output=True, text=True, timeout=120, check=False
    )
    first = proc.stdout.splitlines()[0]
    assert first.startswith("VERDICT: "), proc.stdout + proc.stderr
    # No consumer of the platform's groups runs here while events wait in their topics, or they
    # have all been consumed: either way the verdict and the exit code agree.
    assert (proc.returncode == 1) == first.startswith("VERDICT: FAIL"), proc.stdout
    for name in ("units", "consumer " + names.CONSUMER_GROUP_STREAM, "outbox", "dead letters", "disk", "model"):
        assert name in proc.stdout, proc.stdout
