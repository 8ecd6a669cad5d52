from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gourmetgram.common import names
from tests.integration.stream.helpers import Service, commit_group_at_end


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for svc in started:
        svc.stop()


@pytest.fixture()
def consumer_group(kafka_bootstrap: str) -> str:
    """A fresh group positioned at the current end of the event topics: it sees only this test's events."""
    group = f"gg-test-stream-{uuid.uuid4().hex[:8]}"
    commit_group_at_end(kafka_bootstrap, group, list(names.EVENT_TOPICS))
    return group


@pytest.fixture()
def start_consumer(services, tmp_path, infra_env, migrated_db, kafka_bootstrap, consumer_group):
    def _start(**env: str) -> Service:
        svc = Service(
            "gourmetgram.stream_consumer.main",
            {"KAFKA_CONSUMER_GROUP": consumer_group, **env},
            tmp_path / f"stream-consumer-{len(services)}.log",
        ).start()
        services.append(svc)
        return svc

    return _start


@pytest.fixture()
def start_inference(services, tmp_path, infra_env, migrated_db, kafka_bootstrap, s3_settings):
    # A fresh group at the current end of the request topic: it sees only this test's requests.
    group = f"gg-test-inf-{uuid.uuid4().hex[:8]}"
    commit_group_at_end(kafka_bootstrap, group, [names.TOPIC_MODERATION_REQUESTS])

    def _start(**env: str) -> Service:
        svc = Service(
            "gourmetgram.inference.main",
            {"KAFKA_CONSUMER_GROUP": group, **env},
            tmp_path / f"inference-{len(services)}.log",
        ).start()
        services.append(svc)
        return svc

    return _start
