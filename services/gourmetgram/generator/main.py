"""``gourmetgram-generator``: simulated users driving the API at a steady Poisson rate.

    gourmetgram-generator                       # run until SIGTERM/SIGINT
    gourmetgram-generator --duration 60         # run for a minute
    gourmetgram-generator --make-sample DIR     # write the offline sample set (Food-11 layout)

Settings (GENERATOR_*) are in :class:`gourmetgram.common.settings.GeneratorSettings`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import string
import time
from collections import Counter
from typing import Any

from gourmetgram.common import logs
from gourmetgram.common.settings import GeneratorSettings
from gourmetgram.generator import images as image_sources
from gourmetgram.generator.client import ApiClient, ApiError
from gourmetgram.generator.mix import EventMix, poisson_arrivals
from gourmetgram.generator.state import State, load_state

log = logs.get_logger("generator")

ADJECTIVES = ("homemade", "crispy", "spicy", "fresh", "golden", "smoky", "creamy", "zesty", "rustic", "classic")
PHRASES = (
    "for dinner tonight",
    "at the corner cafe",
    "weekend treat",
    "first try at this recipe",
    "family favourite",
    "street food find",
    "lunch break",
    "brunch with friends",
)
COMMENTS = (
    "Looks delicious!",
    "Recipe please?",
    "Where is this from?",
    "So good",
    "Wow, great plating",
    "I need this right now",
    "Too much salt maybe?",
    "Making this tomorrow",
    "Yum",
    "Nice colours",
)
REASONS = ("spam", "inappropriate", "not food", "misleading caption", "offensive", "duplicate post")
MAX_LAG_SECONDS = 5.0


class Generator:
    def __init__(self, settings: GeneratorSettings, duration: float | None = None) -> None:
        self.settings = settings
        self.duration = duration
        self.rng = random.Random(settings.generator_seed)
        self.mix = EventMix.from_spec(settings.generator_event_mix)
        self.images, self.image_source = image_sources.load_images(settings.generator_dataset_path)
        self.state = State(limit=settings.generator_state_limit)
        self.client = ApiClient(
            settings.generator_api_url,
            timeout=settings.generator_request_timeout,
            max_retries=settings.generator_max_retries,
            backoff=settings.generator_retry_backoff,
            max_connections=settings.generator_max_in_flight,
        )
        self.stop = asyncio.Event()
        self.ok: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.started = time.monotonic()
        self.arrivals = 0

    # --- actions ------------------------------------------------------------------------------
    async def create_user(self) -> str:
        name = "".join(self.rng.choices(string.ascii_lowercase, k=12))
        user = await self.client.request("POST", "/users/", json={"username": name})
        self.state.add("users", str(user["id"]))
        return str(user["id"])

    async def _some_user(self) -> str:
        return self.state.pick("users", self.rng) or await self.create_user()

    async def upload(self) -> None:
        user_id = await self._some_user()
        ref = self.rng.choice(self.images)
        data = await asyncio.to_thread(ref.read) if ref.path else ref.read()
        caption = f"{self.rng.choice(ADJECTIVES).capitalize()} {ref.category.lower()} {self.rng.choice(PHRASES)}"
        image = await self.client.request(
            "POST",
            "/upload/",
            data={"user_id": user_id, "caption": caption, "category": ref.category},
            files={"file": (ref.filename, data, "application/octet-stream")},
        )
        self.state.add("images", str(image["id"]))

    async def view(self) -> bool:
        image_id = self.state.pick_image(self.rng)
        if image_id is None:
            return False
        await self.client.request("POST", f"/images/{image_id}/view")
        return True

    async def comment(self) -> bool:
        image_id = self.state.pick_image(self.rng)
        if image_id is None:
            return False
        user_id = await self._some_user()
        body = {"image_id": image_id, "user_id": user_id, "content": self.rng.choice(COMMENTS)}
        comment = await self.client.request("POST", "/comments/", json=body)
        self.state.add("comments", str(comment["id"]))
        return True

    async def flag(self) -> bool:
        targets = [k for k in ("images", "comments") if getattr(self.state, k)]
        if not targets:
            return False
        user_id = await self._some_user()
        target = self.rng.choice(targets)
        body: dict[str, Any] = {"user_id": user_id, "reason": self.rng.choice(REASONS)}
        if target == "images":
            body["image_id"] = self.state.pick_image(self.rng)
        else:
            body["comment_id"] = self.state.pick("comments", self.rng)
        await self.client.request("POST", "/flags/", json=body)
        return True

    async def perform(self, kind: str) -> None:
        try:
            if kind == "user":
                await self.create_user()
                done = True
            elif kind == "upload":
                await self.upload()
                done = True
            else:
                done = await getattr(self, kind)()
            (self.ok if done else self.skipped)[kind if done else f"{kind}_no_target"] += 1
        except ApiError as exc:
            self.failed[kind] += 1
            logs.event(log, "request failed", level=30, kind=kind, status=exc.status, error=str(exc))
        except Exception:
            self.failed[kind] += 1
            log.exception("action failed")

    # --- lifecycle ----------------------------------------------------------------------------
    async def wait_for_api(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            try:
                r = await self.client.http.get("/health")
                if r.status_code == 200:
                    return
                logs.event(log, "waiting for the API", level=30, status=r.status_code)
            except Exception as exc:
                logs.event(log, "waiting for the API", level=30, error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
            delay = min(delay * 2, 10.0)

    async def recover_state(self) -> None:
        url = self.settings.database_url.get_secret_value()
        for attempt in range(5):
            try:
                self.state = await asyncio.to_thread(
                    load_state, url, self.settings.generator_state_limit, self.settings.db_connect_timeout
                )
                logs.event(
                    log,
                    "state recovered from database",
                    users=len(self.state.users),
                    images=len(self.state.images),
                    comments=len(self.state.comments),
                )
                return
            except Exception as exc:
                logs.event(log, "state recovery failed", level=30, attempt=attempt + 1, error=type(exc).__name__)
                await asyncio.sleep(min(2**attempt, 10))
        logs.event(log, "starting with empty state", level=30)

    async def bootstrap(self) -> None:
        s = self.settings
        users_needed = max(0, s.generator_initial_users - len(self.state.users))
        images_needed = max(0, s.generator_initial_images - len(self.state.images))
        created = Counter[str]()
        for _ in range(users_needed):
            if self.stop.is_set():
                return
            try:
                await self.create_user()
                created["users"] += 1
            except ApiError as exc:
                logs.event(log, "bootstrap user failed", level=30, error=str(exc))
        for _ in range(images_needed):
            if self.stop.is_set():
                return
            try:
                await self.upload()
                created["images"] += 1
            except ApiError as exc:
                logs.event(log, "bootstrap upload failed", level=30, error=str(exc))
        logs.event(
            log,
            "bootstrap done",
            users_created=created["users"],
            images_created=created["images"],
            users=len(self.state.users),
            images=len(self.state.images),
        )

    def log_stats(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        total = sum(self.ok.values())
        logs.event(
            log,
            "generator stopped" if final else "stats",
            elapsed_s=round(elapsed, 1),
            arrivals=self.arrivals,
            ok=total,
            rate_per_s=round(total / elapsed, 3) if elapsed > 0 else 0,
            target_per_s=round(self.settings.generator_arrival_rate / 3600, 3),
            failed=sum(self.failed.values()),
            retries=self.client.retries,
            in_flight=len(self.in_flight),
            by_kind=",".join(f"{k}:{v}" for k, v in sorted(self.ok.items())),
            skipped=",".join(f"{k}:{v}" for k, v in sorted(self.skipped.items())) or "0",
            users=len(self.state.users),
            images=len(self.state.images),
            comments=len(self.state.comments),
        )

    async def _stats_loop(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.settings.generator_stats_interval)
            if not self.stop.is_set():
                self.log_stats()

    async def _arrivals_loop(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + self.duration if self.duration else None
        arrivals = poisson_arrivals(self.settings.generator_arrival_rate, self.rng, start)
        while True:
            t = next(arrivals)
            if end is not None and t > end:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), max(0.0, end - loop.time()))
                break
            delay = t - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                break
            if delay < -MAX_LAG_SECONDS:  # suspended or overloaded: restart the schedule from now
                self.skipped["lag_reset"] += 1
                arrivals = poisson_arrivals(self.settings.generator_arrival_rate, self.rng, loop.time())
            self.arrivals += 1
            kind = self.mix.sample(self.rng)
            if len(self.in_flight) >= self.settings.generator_max_in_flight:
                self.skipped["saturated"] += 1
                continue
            task = asyncio.create_task(self.perform(kind))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        self.stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        logs.event(
            log,
            "generator starting",
            api=self.settings.generator_api_url,
            source=self.image_source,
            dataset_images=len(self.images),
            rate_per_hour=self.settings.generator_arrival_rate,
            mix=",".join(f"{k}:{round(v, 3)}" for k, v in self.mix.probabilities.items()),
        )
        try:
            await self.recover_state()
            await self.wait_for_api()
            await self.bootstrap()
            self.started = time.monotonic()
            stats = asyncio.create_task(self._stats_loop())
            await self._arrivals_loop()
            stats.cancel()
            if self.in_flight:
                _, pending = await asyncio.wait(set(self.in_flight), timeout=10)
                for task in pending:
                    task.cancel()
        finally:
            self.log_stats(final=True)
            await self.client.close()


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gourmetgram-generator", description=__doc__.splitlines()[0])
    parser.add_argument("--make-sample", metavar="DIR", help="write the offline sample set in the Food-11 layout")
    parser.add_argument("--per-class", type=int, default=image_sources.SAMPLE_PER_CLASS)
    parser.add_argument("--duration", type=float, help="stop after this many seconds of traffic")
    args = parser.parse_args(argv)
    if args.make_sample:
        count = image_sources.make_sample(args.make_sample, args.per_class)
        print(f"wrote {count} sample images under {args.make_sample}")
        return
    settings = GeneratorSettings()
    logs.setup(settings.log_level, settings.log_format)
    asyncio.run(Generator(settings, duration=args.duration).run())


if __name__ == "__main__":
    run()
