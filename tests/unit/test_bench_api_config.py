"""bench/api_throughput.py starts the API with the environment the role renders (its template,
defaults and vars), so the benchmarked configuration is the deployed one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "gourmetgram_service"


def _bench():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("api_throughput", REPO / "bench" / "api_throughput.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INFRA = {
    "DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:1/gg",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:2",
    "S3_ENDPOINT_URL": "http://127.0.0.1:3",
    "AWS_ACCESS_KEY_ID": "k",
    "AWS_SECRET_ACCESS_KEY": "s",
}


def test_bench_renders_the_role_template_with_role_defaults() -> None:
    env = _bench().deployed_api_env(INFRA, "127.0.0.1", 4321)
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert env["API_WORKERS"] == str(defaults["gourmetgram_service_api_workers"])
    assert env["LOG_LEVEL"] == defaults["gourmetgram_service_log_level"]
    assert (env["API_HOST"], env["API_PORT"]) == ("127.0.0.1", "4321")
    # nothing but addresses, credentials and the role's own values: no tuned setting
    assert set(env) == {*INFRA, "API_HOST", "API_PORT", "API_WORKERS", "LOG_LEVEL", "GOURMETGRAM_BUILD"}
    assert {k: env[k] for k in INFRA} == INFRA


def test_group_vars_set_no_api_tuning_the_bench_would_miss() -> None:
    app = (REPO / "inventory" / "group_vars" / "all" / "app.yml").read_text()
    api_group = yaml.safe_load(app)["gourmetgram_service_settings"]["api"]
    assert set(api_group) == {"API_HOST", "API_PORT"}
    assert "gourmetgram_service_extra_env" not in app
