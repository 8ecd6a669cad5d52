"""API write throughput next to pgbench -N on the same PostgreSQL, latency at a fixed 500 req/s,
the outbox relay's backlog over time, and exact loss/duplication counts.

    python bench/api_throughput.py [--seconds 15] [--images 200] [--rate 500]

Needs the loopback servers (tests/infra/servers.sh start), wrk and pgbench. The API is the
``gourmetgram-api`` entry point (as the unit runs it) with the environment rendered from the
role's own template (roles/gourmetgram_service/templates/service.env.j2, role defaults and
vars): only the addresses (loopback servers) differ from a deployment, no setting is tuned.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from _common import REPO, load_infra_env, percentile
from jinja2 import Environment

from gourmetgram.api.devserver import ApiProcess, free_port
from gourmetgram.common import db, kafka, names

ROLE = REPO / "roles" / "gourmetgram_service"
OUT = REPO / "bench" / "results"
CONNECTIONS, THREADS = 32, 2


def deployed_api_env(infra: dict[str, str], host: str, port: int) -> dict[str, str]:
    """gourmetgram-api's EnvironmentFile as the role renders it, with loopback addresses."""
    values: dict[str, Any] = {}
    for part in ("defaults", "vars"):
        values.update(yaml.safe_load((ROLE / part / "main.yml").read_text()))
    values.update(
        ansible_managed="rendered by bench/api_throughput.py",
        __gourmetgram_service_env_for="api",
        __gourmetgram_service_digest="bench",
        gourmetgram_service_settings={
            "database": {"DATABASE_URL": infra["DATABASE_URL"]},
            "kafka": {"KAFKA_BOOTSTRAP_SERVERS": infra["KAFKA_BOOTSTRAP_SERVERS"]},
            "s3": {k: infra[k] for k in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
            "api": {"API_HOST": host, "API_PORT": port},
        },
    )
    text = Environment().from_string((ROLE / "templates" / "service.env.j2").read_text()).render(**values)
    return {m[1]: m[2] for m in re.finditer(r"^(\w+)='(.*)'$", text, re.M)}


# --- load generators ------------------------------------------------------------------------
WRK_LUA = """
local images, users, kind = {}, {}, os.getenv("BENCH_KIND")
for line in io.lines(os.getenv("BENCH_IDS")) do
  local img, usr = line:match("(%S+) (%S+)"); images[#images + 1] = img; users[#users + 1] = usr
end
request = function()
  local i = math.random(#images)
  if kind == "view" then return wrk.format("POST", "/images/" .. images[i] .. "/view") end
  local h = {["Content-Type"] = "application/json"}
  local ids = '{"image_id":"' .. images[i] .. '","user_id":"' .. users[i] .. '",'
  if kind == "comment" then return wrk.format("POST", "/comments/", h, ids .. '"content":"bench"}') end
  return wrk.format("POST", "/flags/", h, ids .. '"reason":"bench"}')
end
"""


def run_wrk(url: str, kind: str, ids_file: Path, lua: Path, seconds: int) -> dict[str, Any]:
    env = {**os.environ, "BENCH_KIND": kind, "BENCH_IDS": str(ids_file)}
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(lua), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    total = int(re.search(r"(\d+) requests in", out)[1])
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"kind": kind, "rps": rps, "requests": total, "non2xx": int(bad[1]) if bad else 0, "socket": errors}


async def fixed_rate(host: str, port: int, rate: float, seconds: float, make: Any) -> tuple[list[float], dict]:
    """Open loop: request i is due at t0 + i/rate; latency counts from that due time (no coordinated
    omission). Up to CONNECTIONS keep-alive connections; returns latencies (ms) and status counts."""
    n = int(rate * seconds)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    conns: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        conns.put_nowait(await asyncio.open_connection(host, port))
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.1

    async def one(i: int) -> None:
        due = t0 + i / rate
        reader, writer = await conns.get()
        method, path, body = make(i)
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.I)[1])
        await reader.readexactly(length)
        lat.append((loop.time() - due) * 1000)
        status = int(head.split(b" ", 2)[1])
        statuses[status] = statuses.get(status, 0) + 1
        conns.put_nowait((reader, writer))

    tasks = []
    for i in range(n):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    while not conns.empty():
        conns.get_nowait()[1].close()
    return lat, statuses


# --- PostgreSQL side ------------------------------------------------------------------------
def pgbench(admin_url: str, seconds: int) -> float:
    """pgbench -N (simple-update) on its own database in the same server, same client count."""
    import psycopg

    url = db.libpq_url(admin_url)
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'pgbench'").fetchone():
            conn.execute("CREATE DATABASE pgbench")
    bench_url = url.rsplit("/", 1)[0] + "/pgbench"
    subprocess.run(["pgbench", "-q", "-i", "-s", "10", bench_url], check=True, capture_output=True)
    out = subprocess.run(
        ["pgbench", "-N", "-c", str(CONNECTIONS), "-j", str(THREADS), "-T", str(seconds), bench_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out)[1])


class BacklogSampler(threading.Thread):
    def __init__(self, url: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.url, self.interval, self.samples = db.libpq_url(url), interval, []
        self.stop = threading.Event()
        self.marks: list[tuple[float, str]] = []
        self.t0 = time.monotonic()

    def run(self) -> None:
        import psycopg

        t0 = self.t0
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                n = conn.execute("SELECT count(*) FROM event_outbox WHERE sent_at IS NULL").fetchone()[0]
                self.samples.append((time.monotonic() - t0, n))
                self.stop.wait(self.interval)

    def mark(self, label: str) -> None:
        self.marks.append((time.monotonic() - self.t0, label))


def kafka_counts(bootstrap: str, start: dict[tuple[str, int], int], images: set[str]) -> tuple[int, int]:
    """(messages, distinct event ids) about the bench's images published since ``start``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    ends = {k: c.get_watermark_offsets(TopicPartition(*k), timeout=10)[1] for k in start}
    c.assign([TopicPartition(t, p, o) for (t, p), o in start.items() if ends[(t, p)] > o])
    left = {k for k in start if ends[k] > start[k]}
    msgs, ids = 0, set()
    deadline = time.monotonic() + 300
    while left and time.monotonic() < deadline:
        for m in c.consume(2000, 1.0):
            if m.error():
                continue
            key = (m.topic(), m.partition())
            if m.offset() >= ends[key] - 1:
                left.discard(key)
            try:
                ev = json.loads(m.value())
            except ValueError:
                continue
            if isinstance(ev, dict) and ev.get("image_id") in images:
                msgs += 1
                ids.add(ev["event_id"])
    c.close()
    return msgs, len(ids)


def topic_ends(bootstrap: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    md = c.list_topics(timeout=10)
    out = {}
    for t in (names.TOPIC_VIEWS, names.TOPIC_COMMENTS, names.TOPIC_FLAGS):
        for p in md.topics[t].partitions:
            out[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rate", type=float, default=500.0)
    args = ap.parse_args()
    for tool in ("wrk", "pgbench"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing (apt-get install {'wrk' if tool == 'wrk' else 'postgresql-client'})")
    infra = load_infra_env()
    db.upgrade(infra["DATABASE_URL"])
    kafka.ensure_topics(infra["KAFKA_BOOTSTRAP_SERVERS"])
    port = free_port()
    env = deployed_api_env(infra, "127.0.0.1", port)
    from gourmetgram.common.settings import ApiSettings

    s = ApiSettings(**{k.lower(): v for k, v in env.items() if k.lower() in ApiSettings.model_fields})
    print("deployed configuration (roles/gourmetgram_service/templates/service.env.j2 + role defaults):")
    print(
        f"  API_WORKERS={s.api_workers} LOG_LEVEL={s.log_level} DB_POOL_SIZE={s.db_pool_size}"
        f" (per worker) OUTBOX_BATCH_SIZE={s.outbox_batch_size} OUTBOX_POLL_INTERVAL={s.outbox_poll_interval}"
        f" uvicorn loop=uvloop http=httptools; {os.cpu_count()} CPUs"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    api = ApiProcess(env, workers=s.api_workers, log_path=OUT / "api_throughput.api.log")
    # exactly the rendered file (ApiProcess would add its own API_* values)
    api.env, api.port, api.url = {**os.environ, **env}, port, f"http://127.0.0.1:{port}"
    sampler = BacklogSampler(infra["DATABASE_URL"])
    with api, httpx.Client(base_url=api.url, timeout=30) as client:
        rows = []
        jpeg = _jpeg()
        for _ in range(args.images):
            user = client.post("/users/", json={"username": f"b{uuid.uuid4().hex[:12]}"}).json()["id"]
            img = client.post("/upload/", data={"user_id": user}, files={"file": ("b.jpg", jpeg, "image/jpeg")})
            rows.append((img.json()["id"], user))
        images = {r[0] for r in rows}
        ids_file = OUT / "api_throughput.ids"
        ids_file.write_text("".join(f"{i} {u}\n" for i, u in rows))
        lua = Path(tempfile.mkstemp(suffix=".lua")[1])
        lua.write_text(WRK_LUA)
        start = topic_ends(infra["KAFKA_BOOTSTRAP_SERVERS"])
        sampler.start()
        time.sleep(1)
        print(
            f"\npgbench -N -c {CONNECTIONS} -j {THREADS} -T {args.seconds} (scale 10) on the same server ...",
            flush=True,
        )
        sampler.mark("pgbench")
        tps = pgbench(infra["GG_PG_ADMIN_URL"], args.seconds)
        print(f"  pgbench -N: {tps:,.0f} tps")
        peak: dict[str, dict[str, Any]] = {}
        for kind in ("view", "comment", "flag"):
            sampler.mark(f"wrk {kind}")
            r = run_wrk(api.url, kind, ids_file, lua, args.seconds)
            peak[kind] = r
            print(
                f"  wrk POST {kind}: {r['rps']:,.0f} req/s = {100 * r['rps'] / tps:.0f} % of pgbench -N;"
                f" {r['requests']} responses, {r['non2xx']} non-2xx"
            )
        sampler.mark(f"{args.rate:.0f} req/s")
        ids = rows

        def make(i: int) -> tuple[str, str, bytes]:
            img, user = ids[i % len(ids)]
            k = i % 10
            if k < 7:
                return "POST", f"/images/{img}/view", b""
            if k < 9:
                return "POST", "/comments/", json.dumps({"image_id": img, "user_id": user, "content": "b"}).encode()
            return "POST", "/flags/", json.dumps({"image_id": img, "user_id": user, "reason": "b"}).encode()

        lat, statuses = asyncio.run(fixed_rate("127.0.0.1", port, args.rate, args.seconds * 2, make))
        pct = {q: percentile(lat, q / 100) for q in (50, 90, 99, 99.9)}
        print(
            f"\nfixed {args.rate:.0f} req/s for {args.seconds * 2} s (70 % view, 20 % comment, 10 % flag), "
            f"{CONNECTIONS} connections, latency from each request's due time:"
        )
        print(
            "  " + ", ".join(f"p{q:g} {v:.1f} ms" for q, v in pct.items()) + f", max {max(lat):.1f} ms;"
            f" statuses {statuses}"
        )
        sampler.mark("drain")
        deadline = time.monotonic() + 120
        while sampler.samples and sampler.samples[-1][1] > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)
        sampler.stop.set()
        sampler.join()
    import psycopg

    with psycopg.connect(db.libpq_url(infra["DATABASE_URL"])) as conn:
        views = conn.execute("SELECT sum(views) FROM images WHERE id = ANY(%s::uuid[])", (list(images),)).fetchone()[0]
        outbox = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM event_outbox "
            "WHERE topic <> %s AND payload->>'image_id' = ANY(%s)",
            (names.TOPIC_UPLOADS, list(images)),
        ).fetchone()
        rows_n = conn.execute(
            "SELECT (SELECT count(*) FROM comments WHERE image_id = ANY(%(i)s::uuid[])) + "
            "(SELECT count(*) FROM flags WHERE image_id = ANY(%(i)s::uuid[]))",
            {"i": list(images)},
        ).fetchone()[0]
    msgs, distinct = kafka_counts(infra["KAFKA_BOOTSTRAP_SERVERS"], start, images)
    acked_fixed = statuses.get(200, 0)
    wrk_total = sum(r["requests"] - r["non2xx"] for r in peak.values())
    print("\nexactness (the bench's images):")
    print(
        f"  rows written: {views} views + {rows_n} comments/flags = {views + rows_n};"
        f" outbox events {outbox[0]} ({outbox[1]} unsent after the drain)"
    )
    print(
        f"  Kafka: {msgs} messages, {distinct} distinct event ids -> doubled {msgs - distinct},"
        f" lost {outbox[0] - distinct}"
    )
    print(
        f"  acknowledged: {wrk_total} (wrk counted) + {acked_fixed} (fixed rate); rows - acknowledged ="
        f" {views + rows_n - wrk_total - acked_fixed} (requests in flight when wrk stopped, <= {3 * CONNECTIONS})"
    )
    print("\nrelay backlog (unsent outbox rows) over time:")
    for t, label in sampler.marks:
        print(f"  t={t:5.1f} s  start of {label}")
    step = max(1, len(sampler.samples) // 40)
    print("  " + "  ".join(f"{t:.0f}s:{n}" for t, n in sampler.samples[::step]))
    print(f"  max backlog {max(n for _, n in sampler.samples)}")
    _plot(tps, peak, pct, args.rate, sampler, OUT / "api_throughput.png")


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (random.randrange(256), 80, 40)).save(buf, format="JPEG")
    return buf.getvalue()


def _plot(tps: float, peak: dict, pct: dict, rate: float, sampler: BacklogSampler, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = ["pgbench -N", *[f"POST {k}" for k in peak]]
    a.bar(labels, [tps, *[r["rps"] for r in peak.values()]], color=["grey", "C0", "C1", "C2"])
    a.axhline(tps / 2, ls="--", color="k", lw=1, label="50 % of pgbench -N")
    a.set_ylabel("per second")
    a.set_title("peak: wrk 32 connections vs pgbench -N")
    a.legend()
    b.bar([f"p{q:g}" for q in pct], list(pct.values()), color="C0")
    b.axhline(50, ls="--", color="r", lw=1, label="goal p99 50 ms")
    b.set_ylabel("ms")
    b.set_title(f"latency at a fixed {rate:.0f} req/s")
    b.legend()
    c.plot([t for t, _ in sampler.samples], [n for _, n in sampler.samples])
    for t, label in sampler.marks:
        c.axvline(t, color="grey", lw=0.5)
        c.text(t, c.get_ylim()[1] * 0.9, label, rotation=90, fontsize=7)
    c.set_xlabel("s")
    c.set_ylabel("unsent outbox rows")
    c.set_title("relay backlog")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
