"""Lab steps 4–8 automated against a freshly deployed host (issue 6).

The host is brought up exactly as the README tells a newcomer: ``provision/platform.sh up`` (a
fresh Debian 12 sandbox host, Kafka and MinIO from the local artifacts, the sample dataset). The
tests then follow the lab in order, on the host over SSH and against the UIs/APIs on its address:

4  events arrive in all four topics and the Postgres tables grow while the generator runs;
   Redis holds window keys for an image with counts
5  generator stopped, simulate-viral → viral alert in the consumer's journal and a heuristic
   decision row (lab 5e's query)
6  generator restarted, both DAGs run through Airflow's REST API to success, training_data has rows
7  training on the real table publishes the four artifacts to MinIO
8  inference switched to model mode by a playbook variable (re-run of the same command),
   simulate-viral again → a decision with inference_mode = model; the comparison query (8e)
   gives one row per mode

    sudo $GG_CACHE/venv/bin/pytest -m e2e tests/e2e -s

The host comes from the session fixture `sandbox` (tests/deployed.py: GG_E2E_KEEP, GG_E2E_REUSE).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from gourmetgram.common import names
from tests.deployed import Sandbox, log, wait_for

STATE: dict[str, Any] = {}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def platform(sandbox: Sandbox) -> Sandbox:
    """The session's freshly deployed host (tests/deployed.py)."""
    return sandbox


# --- step 4 ---------------------------------------------------------------------------------------
def test_step4_events_flow_into_all_topics_and_tables(platform: Sandbox) -> None:
    platform.ssh("systemctl start gourmetgram-generator")  # running after deploy; a kept host may have it stopped
    t0 = time.monotonic()
    first = platform.stats()
    grown_topics = set()

    def all_grew() -> bool:
        now = platform.stats()
        for topic in names.EVENT_TOPICS:
            if now["topics"][topic] > first["topics"][topic]:
                grown_topics.add(topic)
        tables_grew = all(now["tables"][t] > first["tables"][t] for t in ("users", "images", "comments", "flags"))
        STATE["stats"] = now
        return grown_topics == set(names.EVENT_TOPICS) and tables_grew

    wait_for(all_grew, 300, f"growth in all four topics and tables (so far {sorted(grown_topics)})", interval=5)
    platform.timings["step4 data flowing"] = round(time.monotonic() - t0, 1)
    log(f"step 4: {STATE['stats']}")


def test_step4b_redis_window_keys(platform: Sandbox) -> None:
    key = platform.redis("--scan --pattern 'image:*:views' | head -1").strip()
    assert re.fullmatch(r"image:[0-9a-f-]{36}:views", key), key
    image_id = key.split(":")[1]
    now = time.time()
    out = platform.redis(
        f"TYPE {key}", f"ZCOUNT {key} {now - 3600:.3f} {now + 60:.3f}", f"HGET image:{image_id}:metadata category"
    ).split("\n")
    assert out[0] == "zset" and int(out[1]) >= 1, out
    log(f"step 4b: {key} has {out[1]} views in the last hour; category {out[2]!r}")


# --- step 5 ---------------------------------------------------------------------------------------
def test_step5_viral_burst_heuristic_decision(platform: Sandbox) -> None:
    platform.ssh("systemctl stop gourmetgram-generator")
    out = platform.gourmetgram("simulate-viral")  # as the lab: a random image
    image_id = re.search(r"Simulating viral burst for image: ([0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    STATE["viral_heuristic"] = image_id
    short = image_id[:8]
    wait_for(
        lambda: (
            f"{names.LOG_VIRAL} Image {short}"
            in platform.ssh("journalctl -u gourmetgram-stream-consumer --no-pager -o cat | tail -n 500")
        ),
        90,
        "the viral alert in the consumer's journal",
    )
    rows = wait_for(
        lambda: platform.psql(
            "SELECT image_id, inference_mode, moderation_probability, recommendation, trigger_type, created_at "
            f"FROM moderation_decisions WHERE image_id = '{image_id}' ORDER BY created_at DESC LIMIT 10"
        ),
        90,
        "a moderation decision row",
    )
    assert len(rows) == 1, rows
    # A plain burst is the bot-like pattern alone (0.3, REVIEW); a flagged image adds 0.4 (FLAG).
    flagged = int(platform.psql(f"SELECT count(*) FROM flags WHERE image_id = '{image_id}'")[0][0]) > 0
    assert rows[0][1] == "heuristic" and rows[0][4] == "viral", rows
    assert rows[0][3] == ("FLAG" if flagged else "REVIEW"), (rows, flagged)
    log(f"step 5: {rows[0]}")


# --- step 6 ---------------------------------------------------------------------------------------
def _airflow(platform: Sandbox, method: str, path: str, body: dict | None = None, token: str | None = None) -> Any:
    req = urllib.request.Request(
        f"http://{platform.address}:8080{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from exc


def _run_dag(platform: Sandbox, token: str, dag_id: str, conf: dict[str, Any]) -> float:
    _airflow(platform, "PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token)
    run = _airflow(
        platform,
        "POST",
        f"/api/v2/dags/{dag_id}/dagRuns",
        {"dag_run_id": f"e2e-{uuid.uuid4().hex[:8]}", "logical_date": None, "conf": conf},
        token,
    )
    t0 = time.monotonic()

    def finished() -> str | None:
        state = _airflow(platform, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}", token=token)["state"]
        return state if state in ("success", "failed") else None

    state = wait_for(finished, 900, f"{dag_id} run to finish", interval=5)
    assert state == "success", f"{dag_id} run {run['dag_run_id']} ended {state}"
    return round(time.monotonic() - t0, 1)


def test_step6_both_dags_through_airflow_then_training_data(platform: Sandbox) -> None:
    platform.ssh("systemctl start gourmetgram-generator")
    time.sleep(180)  # let data accumulate (lab 6a: "wait 2-3 minutes")
    token = _airflow(
        platform, "POST", "/auth/token", {"username": "admin", "password": platform.secret("airflow_admin_password")}
    )["access_token"]
    platform.timings["dag redpanda_event_aggregation"] = _run_dag(platform, token, names.DAG_AGGREGATION, {})
    platform.timings["dag etl_moderation"] = _run_dag(platform, token, names.DAG_ETL, {})  # default variables only
    out = platform.gourmetgram("verify-pipeline")
    rows = int(re.search(r"Row count: (\d+)", out).group(1))  # type: ignore[union-attr]
    labels = re.search(r"Labels: (\d+) positive \(flagged\), (\d+) negative", out)
    assert "Table: moderation.training_data" in out and rows >= 200 and labels, out
    assert int(labels.group(1)) > 0 and int(labels.group(2)) > 0, out
    STATE["training_rows"] = rows
    log(f"step 6: moderation.training_data has {rows} rows, {labels.group(1)} positive, {labels.group(2)} negative")


# --- step 7 ---------------------------------------------------------------------------------------
def test_step7_training_publishes_four_artifacts(platform: Sandbox) -> None:
    t0 = time.monotonic()
    out = platform.ssh("cd /tmp && gourmetgram train --publish --out /tmp/e2e-models", timeout=1200)
    platform.timings["step7 training"] = round(time.monotonic() - t0, 1)
    assert "published model version" in out, out[-2000:]
    models = json.loads(platform.gourmetgram("models"))
    assert set(models["objects"]) >= {names.MODEL_FILE, names.SCALER_FILE, names.ENCODER_FILE, names.METADATA_FILE}
    assert models["metadata"]["rows"] > 0 and set(models["metadata"]["sha256"]) == set(names.MODEL_ARTIFACTS)
    log(f"step 7: {models['objects']} version {models['metadata']['version']}")


# --- step 8 ---------------------------------------------------------------------------------------
def test_step8_model_mode_by_playbook_variable(platform: Sandbox) -> None:
    platform.up("-e", "gourmetgram_inference_mode=model", label="redeploy model mode")
    wait_for(
        lambda: (
            "Model loaded successfully"
            in platform.ssh("journalctl -u gourmetgram-inference --no-pager -o cat | tail -n 200")
        ),
        120,
        "the inference service to load the model",
    )
    image_id = platform.psql(
        f"SELECT id FROM images WHERE id <> '{STATE['viral_heuristic']}' ORDER BY uploaded_at DESC LIMIT 1"
    )[0][0]
    platform.gourmetgram("simulate-viral", image_id)
    rows = wait_for(
        lambda: platform.psql(
            "SELECT inference_mode, model_version, recommendation FROM moderation_decisions "
            f"WHERE image_id = '{image_id}'"
        ),
        120,
        "a model decision",
    )
    assert rows[0][0] == "model" and int(rows[0][1]) >= 1, rows
    log(f"step 8d: {rows[0]}")


def test_step8e_comparison_query_has_one_row_per_mode(platform: Sandbox) -> None:
    rows = platform.psql(
        "SELECT inference_mode, COUNT(*), AVG(moderation_probability),"
        " COUNT(*) FILTER (WHERE recommendation = 'FLAG') AS flagged,"
        " COUNT(*) FILTER (WHERE recommendation = 'REVIEW') AS review,"
        " COUNT(*) FILTER (WHERE recommendation = 'SAFE') AS safe"
        " FROM moderation_decisions GROUP BY inference_mode"
    )
    modes = [r[0] for r in rows]
    assert len(modes) == len(set(modes)) and {"heuristic", "model"} <= set(modes), rows
    log(f"step 8e: {rows}")
