"""The service configuration the playbook deploys, read from the same files the role templates read.

roles/gourmetgram_service/templates/service.env.j2 writes each unit's EnvironmentFile from:
LOG_LEVEL (role default gourmetgram_service_log_level), the settings groups the service gets
(role vars __gourmetgram_service_groups, values in inventory/group_vars/all/app.yml
gourmetgram_service_settings) and gourmetgram_service_extra_env (role default: none). Every
other setting is the pydantic default in gourmetgram.common.settings. The benchmarks start the
services with exactly that environment, with the connection values pointing at the loopback
servers and a fresh consumer group (so a run reads only its own events). Nothing else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from gourmetgram.common import kafka
from gourmetgram.common.settings import InferenceSettings, StreamConsumerSettings

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "roles" / "gourmetgram_service"
APP_VARS = REPO / "inventory" / "group_vars" / "all" / "app.yml"
# Connection settings: deployed values are addresses and secrets; the benchmark uses the loopback servers'.
CONNECTION_KEYS = frozenset(
    {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
)
GROUP_KEY = "KAFKA_CONSUMER_GROUP"  # a fresh group per run: isolation, not tuning
SETTINGS = {"stream-consumer": StreamConsumerSettings, "inference": InferenceSettings}
MODULES = {"stream-consumer": "gourmetgram.stream_consumer.main", "inference": "gourmetgram.inference.main"}
_SIMPLE_VAR = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def role_env(service: str) -> dict[str, str]:
    """The unit's environment as the template renders it, connection values left as written."""
    defaults, role_vars, app = _yaml(ROLE / "defaults" / "main.yml"), _yaml(ROLE / "vars" / "main.yml"), _yaml(APP_VARS)
    env: dict[str, str] = {"LOG_LEVEL": str(defaults["gourmetgram_service_log_level"])}
    settings = app["gourmetgram_service_settings"]
    for group in role_vars["__gourmetgram_service_groups"][service]:
        for key, value in (settings.get(group) or {}).items():
            env[key] = _resolve(str(value), {**defaults, **app}, key)
    extra = {
        **(defaults.get("gourmetgram_service_extra_env") or {}),
        **(app.get("gourmetgram_service_extra_env") or {}),
    }
    env.update({k: str(v) for k, v in (extra.get(service) or {}).items()})
    return env


def _resolve(value: str, variables: dict[str, Any], key: str) -> str:
    if key in CONNECTION_KEYS or "{{" not in value:
        return value
    m = _SIMPLE_VAR.match(value)
    if m is None or m.group(1) not in variables:
        raise ValueError(f"{key}={value!r}: cannot resolve the deployed value")
    return str(variables[m.group(1)])


def service_env(service: str, infra: dict[str, str], group: str) -> dict[str, str]:
    """What the benchmark gives the service process (and nothing more)."""
    env = role_env(service)
    for key in env.keys() & CONNECTION_KEYS:
        env[key] = infra[key]
    env[GROUP_KEY] = group
    return env


def effective_settings(service: str, env: dict[str, str]) -> BaseSettings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return SETTINGS[service]()  # type: ignore[call-arg]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def describe(service: str, env: dict[str, str]) -> str:
    """Printable configuration: effective settings (secrets hidden) and the Kafka client settings."""
    s = effective_settings(service, env)
    shown = {k: v for k, v in s.model_dump().items() if k not in {"database_url", "redis_password"}}
    shown = {k: v for k, v in shown.items() if "secret" not in k}
    consumer = {
        k: v
        for k, v in kafka.consumer_config("-", "-", "-").items()
        if k not in {"bootstrap.servers", "group.id", "client.id"}
    }
    producer = {k: v for k, v in kafka.producer_config("-", "-").items() if k not in {"bootstrap.servers", "client.id"}}
    lines = [f"  {service} settings: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))]
    lines.append("  kafka consumer: " + ", ".join(f"{k}={v}" for k, v in consumer.items()))
    lines.append("  kafka producer: " + ", ".join(f"{k}={v}" for k, v in producer.items()))
    return "\n".join(lines)
