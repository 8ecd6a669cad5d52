"""Viral-burst latency: last view event acknowledged by the broker → decision row in Postgres.

    python bench/viral_latency.py [--bursts 20] [--views 110]

Runs the stream consumer and the inference service as real processes against the loopback
servers and prints p50/p95 (and writes bench/results/viral_latency.png).
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from _common import REPO, commit_group_at_end, load_infra_env, percentile
from sqlalchemy import text

from gourmetgram.common import db, kafka, names
from gourmetgram.tools import simulate_viral
from tests.integration.stream import helpers as h


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bursts", type=int, default=20)
    ap.add_argument("--views", type=int, default=110)
    args = ap.parse_args()
    env = load_infra_env()
    bootstrap, url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    db.upgrade(url)
    kafka.ensure_topics(bootstrap)
    tag = uuid.uuid4().hex[:8]
    g_stream, g_inf = f"gg-bench-s-{tag}", f"gg-bench-i-{tag}"
    commit_group_at_end(bootstrap, g_stream, list(names.EVENT_TOPICS))
    commit_group_at_end(bootstrap, g_inf, [names.TOPIC_MODERATION_REQUESTS])
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    svcs = [
        h.Service(
            "gourmetgram.stream_consumer.main",
            {"KAFKA_CONSUMER_GROUP": g_stream, "CONSUMER_POLL_TIMEOUT": "0.1"},
            out / f"{g_stream}.log",
        ).start(),
        h.Service(
            "gourmetgram.inference.main",
            {"KAFKA_CONSUMER_GROUP": g_inf, "INFERENCE_MODE": "heuristic"},
            out / f"{g_inf}.log",
        ).start(),
    ]
    engine = db.engine_for(url)
    latencies: list[float] = []
    try:
        time.sleep(3)  # group joins
        for i in range(args.bursts):
            _, image_id = h.seed_image(url)
            events = simulate_viral.build_burst(image_id, args.views, 240)
            simulate_viral.publish(bootstrap, events)
            t0 = time.perf_counter()
            while True:
                with engine.connect() as conn:
                    found = conn.execute(
                        text("SELECT 1 FROM moderation_decisions WHERE image_id = :i"), {"i": image_id}
                    ).first()
                if found:
                    break
                if time.perf_counter() - t0 > 60:
                    raise SystemExit(f"burst {i}: no decision within 60 s")
                time.sleep(0.01)
            latencies.append((time.perf_counter() - t0) * 1000)
            print(f"  burst {i + 1}/{args.bursts}: {latencies[-1]:.0f} ms", flush=True)
    finally:
        for s in svcs:
            s.stop()
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(
        f"viral burst ({args.views} views) → decision row: p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
        f"max {max(latencies):.0f} ms over {len(latencies)} bursts"
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(range(1, len(latencies) + 1), latencies, marker="o")
        ax.axhline(p50, ls="--", label=f"p50 {p50:.0f} ms")
        ax.axhline(p95, ls=":", label=f"p95 {p95:.0f} ms")
        ax.set_xlabel("burst")
        ax.set_ylabel("burst → decision (ms)")
        ax.legend()
        fig.tight_layout()
        path = Path(out) / "viral_latency.png"
        fig.savefig(path, dpi=110)
        print(f"plot: {path}")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
