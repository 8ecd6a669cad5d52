"""``gourmetgram``: operator tools (schema migrations, topics, viral simulation, pipeline check)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from gourmetgram.common import names


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set (on a deployed host run the CLI as `sudo gourmetgram ...`)")
    return value


_DELEGATED = {"train": "train_main", "generate-large-dataset": "generate_main"}


def main(argv: list[str] | None = None) -> int:
    """Run a command; a failure a student can act on is printed as ``error: …`` + hint, exit 2."""
    from gourmetgram.common.errors import explain

    try:
        return _run(argv)
    except Exception as exc:
        known = explain(exc)
        if known is None:
            raise
        print(f"error: {known}", file=sys.stderr)
        return 2


def _run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="gourmetgram", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_db = sub.add_parser("db", help="database schema")
    p_db.add_argument("action", choices=["upgrade", "current"])

    p_topics = sub.add_parser("topics", help="create the platform's Kafka topics if missing")
    p_topics.add_argument("action", choices=["ensure"])

    p_viral = sub.add_parser("simulate-viral", help="publish a viral burst of view events (lab step 5b)")
    p_viral.add_argument("image_id", nargs="?", help="image id (default: a random image from the database)")
    p_viral.add_argument("--views", type=int, default=110, help="number of view events (default 110)")
    p_viral.add_argument("--spread-seconds", type=float, default=240.0, help="event times spread (default 240)")

    sub.add_parser("verify-pipeline", help="print schema, row count and sample rows of moderation.training_data")
    for name, what in (
        ("train", "stream-train on an Iceberg table, optionally --publish (lab 7)"),
        ("generate-large-dataset", "create moderation.large_training_data (lab 7a)"),
    ):
        p_sub = sub.add_parser(name, help=what, add_help=False)
        p_sub.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("stats", help="messages per topic and rows per table, as JSON")
    sub.add_parser("models", help="the published model artifacts and their metadata, as JSON")
    p_doctor = sub.add_parser("doctor", help="is the platform healthy? a verdict first, then each check")
    p_doctor.add_argument("--json", action="store_true", help="the verdict and the checks as JSON")

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _DELEGATED:
        from gourmetgram.training import cli as training_cli

        getattr(training_cli, _DELEGATED[argv[0]])(argv[1:])
        return 0
    args = parser.parse_args(argv)
    if args.command == "db":
        from gourmetgram.common import db

        url = _env("DATABASE_URL")
        if args.action == "upgrade":
            db.upgrade(url)
        print(f"schema revision: {db.current_revision(url)}")
    elif args.command == "topics":
        from gourmetgram.common import kafka

        created = kafka.ensure_topics(_env("KAFKA_BOOTSTRAP_SERVERS"))
        print(f"created: {', '.join(created) or 'none'}; expected: {', '.join(names.ALL_TOPICS)}")
    elif args.command == "simulate-viral":
        from gourmetgram.tools import simulate_viral

        if args.views < 1:
            parser.error("--views must be at least 1")
        simulate_viral.main(
            _env("DATABASE_URL"), _env("KAFKA_BOOTSTRAP_SERVERS"), args.image_id, args.views, args.spread_seconds
        )
    elif args.command == "stats":
        from gourmetgram.tools import stats

        print(json.dumps(stats.stats(_env("DATABASE_URL"), _env("KAFKA_BOOTSTRAP_SERVERS")), indent=2))
    elif args.command == "models":
        from gourmetgram.common.settings import S3Settings
        from gourmetgram.common.storage import s3_client
        from gourmetgram.tools import stats

        found = stats.models(s3_client(S3Settings()))  # type: ignore[call-arg]
        print(json.dumps(found, indent=2, default=str))
        if found["metadata"] is None:
            print(
                "no model published yet: run training/training.ipynb in Jupyter or `sudo gourmetgram train --publish`"
                " (lab step 7)",
                file=sys.stderr,
            )
    elif args.command == "doctor":
        from gourmetgram.tools import doctor

        return doctor.main(as_json=args.json)
    elif args.command == "verify-pipeline":
        from gourmetgram.etl import verify  # provided by the ETL package

        return int(verify.main() or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
