"""Stream-consumer throughput: N produced view events → all offsets committed, in events/s.

    python bench/stream_throughput.py [--events 100000] [--images 500] [--batch 500]

Needs the loopback servers (tests/infra/servers.sh start). The consumer runs as a real
process (python -m gourmetgram.stream_consumer.main) with a group positioned at the current
end of the topics, so it reads exactly the N new events.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from _common import commit_group_at_end, committed, load_infra_env

from gourmetgram.common import db, kafka, names
from tests.integration.stream import helpers as h


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    env = load_infra_env()
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    db.upgrade(env["DATABASE_URL"])
    kafka.ensure_topics(bootstrap)
    group = f"gg-bench-{uuid.uuid4().hex[:8]}"
    start = commit_group_at_end(bootstrap, group, list(names.EVENT_TOPICS))
    images = [uuid.uuid4() for _ in range(args.images)]
    per = args.events // args.images
    t = time.perf_counter()
    events = [ev for img in images for ev in h.views(img, per, spread=3000)]
    produced = h.produce(bootstrap, events)
    produce_s = time.perf_counter() - t
    print(
        f"produced {produced} view events for {args.images} images in {produce_s:.1f} s "
        f"({produced / produce_s:,.0f} events/s, acks=all)"
    )
    target = {k: v for k, v in committed(bootstrap, group, list(start)).items()}
    c = kafka.manual_commit_consumer(bootstrap, f"probe-{group}", "probe")
    from confluent_kafka import TopicPartition

    for key in start:
        target[key] = c.get_watermark_offsets(TopicPartition(*key), timeout=10)[1]
    c.close()
    log = Path("/tmp") / f"{group}.log"
    svc = h.Service(
        "gourmetgram.stream_consumer.main",
        {"KAFKA_CONSUMER_GROUP": group, "CONSUMER_BATCH_SIZE": str(args.batch), "LOG_LEVEL": "WARNING"},
        log,
    )
    t0 = time.perf_counter()
    svc.start()
    first = None
    last_print = t0
    try:
        while True:
            now_c = committed(bootstrap, group, list(start))
            done = sum(now_c[k] - start[k] for k in start if now_c[k] >= 0)
            if first is None and done > 0:
                first = time.perf_counter()
            if all(now_c[k] >= target[k] for k in start):
                break
            if time.perf_counter() - last_print > 5:
                print(f"  ... {done:,}/{produced:,} committed ({time.perf_counter() - t0:.0f} s)", flush=True)
                last_print = time.perf_counter()
            if time.perf_counter() - t0 > 900:
                raise SystemExit("timed out after 900 s")
            time.sleep(0.2)
    finally:
        svc.stop()
    total = time.perf_counter() - t0
    steady = time.perf_counter() - (first or t0)
    print(
        f"stream consumer: {produced:,} events committed in {total:.1f} s from process start "
        f"= {produced / total:,.0f} events/s ({produced / steady:,.0f} events/s after the first commit); "
        f"batch={args.batch}"
    )


if __name__ == "__main__":
    main()
