"""The Ansible group_vars carry the same platform facts as gourmetgram.common.names."""

from pathlib import Path

import yaml

from gourmetgram.common import names

PLATFORM = Path(__file__).resolve().parents[2] / "inventory" / "group_vars" / "all" / "platform.yml"


def test_group_vars_match_the_python_module():
    data = yaml.safe_load(PLATFORM.read_text())
    assert data["gourmetgram_topics"] == list(names.ALL_TOPICS)
    assert data["gourmetgram_topic_partitions"] == names.TOPIC_PARTITIONS
    assert data["gourmetgram_topic_retention_ms"] == names.TOPIC_RETENTION_MS
    assert data["gourmetgram_topic_max_message_bytes"] == names.TOPIC_MAX_MESSAGE_BYTES
    assert data["gourmetgram_buckets"] == list(names.BUCKETS)
