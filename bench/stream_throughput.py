"""Stream-consumer throughput draining a pre-filled backlog, with the deployed configuration.

    python bench/stream_throughput.py [--events 100000] [--images 200] [--runs 3]

Needs the loopback servers (tests/infra/servers.sh start). Each run: seed the images in PostgreSQL,
produce their upload events and the backlog (80 % views over the last 50 minutes, 20 % comments
over 5 minutes, so milestones and suspicious-comment alerts fire as in real traffic) BEFORE the
consumer starts, then start the real service (python -m gourmetgram.stream_consumer.main) with the
environment the playbook deploys (bench/_deployed.py) and a fresh group. The clock runs from the
first applied batch to the last (group join and imports excluded; from process start is printed
too). CPU: the consumer process (/proc) and redis-server (INFO cpu) over the same interval.
Writes bench/results/stream_throughput.png.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import redis
from _common import REPO, commit_group_at_end, committed, load_infra_env
from _deployed import MODULES, describe, service_env
from sqlalchemy import text

from gourmetgram.common import db, kafka, names
from gourmetgram.common.events import CommentEvent
from tests.integration.stream import helpers as h

OUT = REPO / "bench" / "results"


def seed(url: str, n: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    pairs = [(uuid.uuid4(), uuid.uuid4()) for _ in range(n)]
    now = datetime.now(UTC) - timedelta(hours=2)
    with db.engine_for(url).begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, username) VALUES (:id, :u)"),
            [{"id": u, "u": f"b_{u.hex[:12]}"} for u, _ in pairs],
        )
        conn.execute(
            text(
                "INSERT INTO images (id, user_id, s3_url, s3_key, content_type, size_bytes, caption, category,"
                " uploaded_at) VALUES (:id, :uid, 'http://x', :key, 'image/jpeg', 10, 'cake', 'Dessert', :at)"
            ),
            [{"id": i, "uid": u, "key": f"images/{i}.jpg", "at": now} for u, i in pairs],
        )
    return pairs


def backlog(pairs: list[tuple[uuid.UUID, uuid.UUID]], events: int) -> list:
    per = events // len(pairs)
    n_comments = per // 5
    out: list = [h.upload_event(img, user) for user, img in pairs]
    end = datetime.now(UTC)
    for user, img in pairs:
        out += h.views(img, per - n_comments, spread=3000, end=end)
        out += [
            CommentEvent(
                comment_id=uuid.uuid4(),
                image_id=img,
                user_id=user,
                content="yum",
                created_at=end - timedelta(seconds=300 * (n_comments - i) / n_comments),
            )
            for i in range(n_comments)
        ]
    return out


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def one_run(env: dict[str, str], args: argparse.Namespace, run: int) -> dict:
    bootstrap, url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    group = f"gg-bench-{uuid.uuid4().hex[:8]}"
    start = commit_group_at_end(bootstrap, group, list(names.EVENT_TOPICS))
    evs = backlog(seed(url, args.images), args.events)
    t = time.perf_counter()
    produced = h.produce(bootstrap, evs)
    print(
        f"run {run}: backlog of {produced:,} events produced in {time.perf_counter() - t:.1f} s (before the consumer)"
    )
    r = redis.Redis(host=env["REDIS_HOST"], port=int(env["REDIS_PORT"]), password=env["REDIS_PASSWORD"])
    counts_key = f"{names.KEY_CONSUMER_COUNTS}:{group}"
    svc_env = service_env("stream-consumer", env, group)
    if run == 1:
        print("deployed configuration (bench/_deployed.py):\n" + describe("stream-consumer", svc_env))
    svc = h.Service(MODULES["stream-consumer"], svc_env, OUT / f"{group}.log", inherit_env=False)
    t0 = time.perf_counter()
    svc.start()
    assert svc.proc is not None
    proc = psutil.Process(svc.proc.pid)
    series: list[tuple[float, int]] = []
    first: tuple[float, int, float, float] | None = None
    try:
        while True:
            done = int(r.hget(counts_key, "applied") or 0) + int(r.hget(counts_key, "replayed") or 0)
            now = time.perf_counter()
            series.append((now - t0, done))
            if first is None and done > 0:
                cpu = proc.cpu_times()
                first = (now, done, cpu.user + cpu.system, redis_cpu(r))
            if done >= produced:
                break
            if now - t0 > 600:
                raise SystemExit("timed out after 600 s")
            time.sleep(0.02)
        cpu = proc.cpu_times()
        end = (time.perf_counter(), done, cpu.user + cpu.system, redis_cpu(r))
    finally:
        svc.stop()
    assert first is not None
    n = end[1] - first[1]
    secs = end[0] - first[0]
    ends = {k: v for k, v in committed(bootstrap, group, list(start)).items()}
    lag = sum(1 for k in start if ends[k] < 0)
    return {
        "events": produced,
        "rate": n / secs,
        "rate_from_start": produced / (end[0] - t0),
        "consumer_cpu_ms": (end[2] - first[2]) * 1000 / n,
        "redis_cpu_ms": (end[3] - first[3]) * 1000 / n,
        "series": series,
        "uncommitted_partitions": lag,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    env = load_infra_env()
    db.upgrade(env["DATABASE_URL"])
    kafka.ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"])
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"partitions per topic: {names.TOPIC_PARTITIONS}; topics: {', '.join(names.EVENT_TOPICS)}")
    results = []
    for run in range(1, args.runs + 1):
        res = one_run(env, args, run)
        results.append(res)
        print(
            f"run {run}: {res['rate']:,.0f} events/s draining (first to last applied batch), "
            f"{res['rate_from_start']:,.0f} events/s from process start; CPU per event: consumer "
            f"{res['consumer_cpu_ms']:.3f} ms, redis-server {res['redis_cpu_ms']:.3f} ms",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in results) for k in ("rate", "rate_from_start", "consumer_cpu_ms")}
    red = statistics.median(r["redis_cpu_ms"] for r in results)
    print(
        f"stream consumer, backlog of {results[0]['events']:,} events ({args.images} images, 20 % comments), "
        f"{names.TOPIC_PARTITIONS} partitions/topic, deployed settings, median of {len(results)} runs: "
        f"{med['rate']:,.0f} events/s draining ({med['rate_from_start']:,.0f} events/s from process start); "
        f"CPU per event: consumer {med['consumer_cpu_ms']:.3f} ms, redis-server {red:.3f} ms"
    )
    plot(results, OUT / "stream_throughput.png")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, res in enumerate(results, 1):
        xs, ys = zip(*res["series"], strict=True)
        ax.plot(xs, ys, label=f"run {i}: {res['rate']:,.0f} events/s")
    ax.set_xlabel("seconds since the consumer process started")
    ax.set_ylabel("events applied to Redis")
    ax.set_title("stream consumer draining a backlog (deployed settings)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
