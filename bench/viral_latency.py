"""Viral burst → moderation decision row, clock from the first send, with the deployed configuration.

    python bench/viral_latency.py [--bursts 20] [--views 110] [--lone 20]

Runs the stream consumer and the inference service as real processes (python -m ...main) with the
environment the playbook deploys (bench/_deployed.py: role template sources + settings defaults,
no overrides) against the loopback servers. Per burst: a new image (PostgreSQL row + its upload
event, like the API's outbox would send, untimed), then the clock starts and 110 view events are
produced with the platform's producer settings (an already connected producer, as the API's relay
keeps one); the clock stops when the moderation_decisions row is visible (polled every 1 ms). Also
measured: a lone view event → its Redis total (no batch to wait for). Prints p50/p95 and writes
bench/results/viral_latency.png.
"""

from __future__ import annotations

import argparse
import time
import uuid

import redis
from _common import REPO, commit_group_at_end, load_infra_env, percentile
from _deployed import MODULES, describe, service_env
from sqlalchemy import text

from gourmetgram.common import db, kafka, names
from gourmetgram.tools import simulate_viral
from tests.integration.stream import helpers as h

OUT = REPO / "bench" / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bursts", type=int, default=20)
    ap.add_argument("--views", type=int, default=110)
    ap.add_argument("--lone", type=int, default=20)
    args = ap.parse_args()
    env = load_infra_env()
    bootstrap, url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    db.upgrade(url)
    kafka.ensure_topics(bootstrap)
    OUT.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    g_stream, g_inf = f"gg-bench-s-{tag}", f"gg-bench-i-{tag}"
    commit_group_at_end(bootstrap, g_stream, list(names.EVENT_TOPICS))
    commit_group_at_end(bootstrap, g_inf, [names.TOPIC_MODERATION_REQUESTS])
    envs = {
        "stream-consumer": service_env("stream-consumer", env, g_stream),
        "inference": service_env("inference", env, g_inf),
    }
    print("deployed configuration (bench/_deployed.py):")
    for name, svc_env in envs.items():
        print(describe(name, svc_env))
    svcs = [
        h.Service(MODULES[name], svc_env, OUT / f"{svc_env['KAFKA_CONSUMER_GROUP']}.log", inherit_env=False).start()
        for name, svc_env in envs.items()
    ]
    producer = kafka.durable_producer(bootstrap, "gg-bench-viral")
    producer.list_topics(timeout=10)  # connected, as a running API relay is
    r = redis.Redis(host=env["REDIS_HOST"], port=int(env["REDIS_PORT"]), password=env["REDIS_PASSWORD"])
    engine = db.engine_for(url)
    bursts: list[float] = []
    alerts: list[float] = []
    lone: list[float] = []
    try:
        _wait_ready(producer, r, engine, url)
        with engine.connect() as conn:
            for i in range(args.bursts):
                user_id, image_id = h.seed_image(url)
                _send(producer, [h.upload_event(image_id, user_id)])
                _wait(lambda img=image_id: r.exists(names.key_metadata(str(img))), 10, "upload applied")
                events = simulate_viral.build_burst(image_id, args.views, 240)
                alert_key = names.key_alert(names.TRIGGER_VIRAL, str(image_id))
                seen: list[float] = []
                t0 = time.perf_counter()
                _send(producer, events)

                def decided(img: uuid.UUID = image_id, key: str = alert_key, seen: list[float] = seen) -> bool:
                    if not seen and r.exists(key):
                        seen.append(time.perf_counter())
                    return _decided(conn, img)

                _wait(decided, 30, f"burst {i}: decision")
                bursts.append((time.perf_counter() - t0) * 1000)
                alerts.append(((seen[0] if seen else time.perf_counter()) - t0) * 1000)
                print(f"  burst {i + 1}/{args.bursts}: {bursts[-1]:.1f} ms (alert in Redis after {alerts[-1]:.1f} ms)")
                time.sleep(0.3)
        user_id, image_id = h.seed_image(url)
        _send(producer, [h.upload_event(image_id, user_id)])
        total = names.key_total(str(image_id), "views")
        for n in range(1, args.lone + 1):
            t0 = time.perf_counter()
            _send(producer, simulate_viral.build_burst(image_id, 1, 1))
            _wait(lambda n=n: int(r.get(total) or 0) >= n, 10, "lone view applied", step=0.0005)
            lone.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.2)
    finally:
        for s in svcs:
            s.stop()
    p50, p95 = percentile(bursts, 0.5), percentile(bursts, 0.95)
    l50, l95 = percentile(lone, 0.5), percentile(lone, 0.95)
    print(
        f"viral burst ({args.views} views) → moderation_decisions row, from the first send, deployed settings: "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(bursts):.1f} ms over {len(bursts)} bursts"
    )
    print(f"  of which first send → viral alert set in Redis (stream consumer): p50 {percentile(alerts, 0.5):.1f} ms")
    print(f"lone view event → Redis total, from the send: p50 {l50:.1f} ms, p95 {l95:.1f} ms over {len(lone)} events")
    plot(bursts, lone, p50, p95)


def _send(producer, events) -> None:  # type: ignore[no-untyped-def]
    for ev in events:
        producer.produce(names.TOPIC_BY_EVENT_TYPE[ev.event_type], key=str(ev.image_id).encode(), value=ev.to_bytes())
    producer.flush(10)  # the relay flushes each outbox batch too


def _decided(conn, image_id: uuid.UUID) -> bool:  # type: ignore[no-untyped-def]
    found = conn.execute(text("SELECT 1 FROM moderation_decisions WHERE image_id = :i"), {"i": image_id}).first()
    conn.rollback()  # a fresh snapshot for the next poll
    return found is not None


def _wait(cond, timeout: float, what: str, step: float = 0.001) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(step)


def _wait_ready(producer, r, engine, url: str) -> None:  # type: ignore[no-untyped-def]
    """Both groups joined: one untimed burst must come through end to end."""
    user_id, image_id = h.seed_image(url)
    _send(producer, [h.upload_event(image_id, user_id), *simulate_viral.build_burst(image_id, 110, 240)])
    with engine.connect() as conn:
        _wait(lambda: _decided(conn, image_id), 60, "services ready (warm-up burst)")


def plot(bursts: list[float], lone: list[float], p50: float, p95: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.hist(bursts, bins=20)
    a.axvline(p50, ls="--", color="k", label=f"p50 {p50:.1f} ms")
    a.axvline(p95, ls=":", color="k", label=f"p95 {p95:.1f} ms")
    a.set_xlabel("first send → decision row (ms)")
    a.set_ylabel("bursts")
    a.set_title(f"viral burst, {len(bursts)} bursts (deployed settings)")
    a.legend()
    b.plot(sorted(lone), [i / len(lone) for i in range(1, len(lone) + 1)], marker=".")
    b.set_xlabel("send → Redis total (ms)")
    b.set_ylabel("fraction of lone events")
    b.set_title("lone view event")
    fig.tight_layout()
    path = OUT / "viral_latency.png"
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
