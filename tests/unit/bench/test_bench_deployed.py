"""bench/ runs the services with the configuration the playbook deploys, and nothing else.

The benchmarks take the service environment from bench/_deployed.py, which reads the sources the
role template reads. These tests fail if the template gains a source the benchmark does not read,
if the benchmark's environment differs from the rendered one, or if a bench script sets a service
setting itself (e.g. CONSUMER_POLL_TIMEOUT=0.1).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from gourmetgram.common.settings import InferenceSettings, StreamConsumerSettings

REPO = Path(__file__).resolve().parents[3]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))
import _deployed as deployed  # noqa: E402

TEMPLATE = REPO / "roles" / "gourmetgram_service" / "templates" / "service.env.j2"
SERVICES = {"stream-consumer": StreamConsumerSettings, "inference": InferenceSettings}


def _infra() -> dict[str, str]:
    return {
        "DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:1/db",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:2",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "3",
        "REDIS_PASSWORD": "pw",
        "S3_ENDPOINT_URL": "http://127.0.0.1:4",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }


def test_the_template_has_no_source_the_benchmark_does_not_read():
    sources = re.findall(r"env\.update\((.+?)\)\s*%\}", TEMPLATE.read_text())
    assert sources == [
        "gourmetgram_service_settings[group] | default({})",
        "{'API_WORKERS': gourmetgram_service_api_workers}",  # the API only
        "gourmetgram_service_extra_env[__gourmetgram_service_env_for] | default({})",
    ]
    assert "'LOG_LEVEL': gourmetgram_service_log_level" in TEMPLATE.read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_bench_env_is_the_rendered_unit_env(service):
    env = deployed.service_env(service, _infra(), "gg-bench-x")
    defaults = yaml.safe_load((REPO / "roles/gourmetgram_service/defaults/main.yml").read_text())
    app = yaml.safe_load((REPO / "inventory/group_vars/all/app.yml").read_text())
    groups = yaml.safe_load((REPO / "roles/gourmetgram_service/vars/main.yml").read_text())[
        "__gourmetgram_service_groups"
    ][service]
    expected_keys = {"LOG_LEVEL", deployed.GROUP_KEY}
    for group in groups:
        expected_keys |= set(app["gourmetgram_service_settings"].get(group) or {})
    assert set(env) == expected_keys
    assert env["LOG_LEVEL"] == defaults["gourmetgram_service_log_level"]
    if service == "inference":
        assert env["INFERENCE_MODE"] == app["gourmetgram_inference_mode"]
    assert not (defaults["gourmetgram_service_extra_env"] or {}).get(service)
    assert not (app.get("gourmetgram_service_extra_env") or {}).get(service)


@pytest.mark.parametrize("service", SERVICES)
def test_every_tunable_setting_is_the_deployed_default(service):
    cls = SERVICES[service]
    env = deployed.service_env(service, _infra(), "gg-bench-x")
    effective = deployed.effective_settings(service, env)
    set_by_role = {k.lower() for k in env}
    for name, field in cls.model_fields.items():
        if name in set_by_role or field.is_required():
            continue
        assert getattr(effective, name) == field.default, f"{service}: {name} differs from the deployed default"


def test_no_bench_script_sets_a_service_setting():
    tunable = {
        name.upper()
        for cls in SERVICES.values()
        for name in cls.model_fields
        if name.upper() not in deployed.CONNECTION_KEYS | {deployed.GROUP_KEY}
    }
    scripts = [p for p in BENCH.glob("*.py") if p.name != "_deployed.py"]  # the reader itself is tested above
    assert {p.name for p in scripts} >= {"stream_throughput.py", "viral_latency.py"}
    for path in scripts:
        source = path.read_text()
        found = sorted(n for n in tunable if re.search(rf"[\"']{n}[\"']", source))
        assert not found, f"{path.name} sets {found}: benchmarks run the deployed configuration"
        for m in re.finditer(r"\bService\(", source):
            call = source[m.end() : m.end() + 300]
            assert "inherit_env=False" in call, f"{path.name}: a service started with the caller's environment"
            assert "service_env" in source, f"{path.name}: service environment not from bench/_deployed.py"
