"""Command-line entry points for training (``gourmetgram train``, ``gourmetgram generate-large-dataset``;
the scripts in training/ call the same functions)."""

from __future__ import annotations

import argparse
import json
import time

from gourmetgram.common import logs, names
from gourmetgram.common.storage import s3_client
from gourmetgram.etl.catalog import load_catalog, open_table
from gourmetgram.etl.config import settings_from_env
from gourmetgram.training import large_dataset, publish, trainer

TRAIN_DOC = """Lab step 7 without a notebook: stream-train on an Iceberg table, write metrics and plots,
optionally publish the artifacts for the inference service.

    gourmetgram train [--table moderation.training_data] [--epochs 3] [--out models/] [--publish]
"""

GENERATE_DOC = """Lab step 7a: create moderation.large_training_data (default 10M rows, seeded).

    gourmetgram generate-large-dataset [--rows 10000000] [--seed 42]

Catalog from DATABASE_URL / S3_* or PYICEBERG_CATALOG__GOURMETGRAM__* (gourmetgram.etl.catalog).
"""


def train_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="gourmetgram train", description=TRAIN_DOC, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--table", default=names.ICEBERG_TRAINING_DATA)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=32_768)
    parser.add_argument("--test-percent", type=int, default=20)
    parser.add_argument("--out", default="models")
    parser.add_argument("--publish", action="store_true", help="upload to s3://gourmetgram-datalake/models/moderation/")
    args = parser.parse_args(argv)
    logs.setup()
    settings = settings_from_env()
    table = open_table(load_catalog(settings), args.table)
    result = trainer.train_streaming(
        trainer.batch_source(table, args.batch_rows), epochs=args.epochs, test_percent=args.test_percent
    )
    trainer.save_plots(result, args.out)
    print(json.dumps(result.metrics, indent=2))
    if args.publish:
        meta = publish.publish(s3_client(settings), result, settings.datalake_bucket)
        print(f"published model version {meta.version} to s3://{settings.datalake_bucket}/{names.MODEL_PREFIX}")


def generate_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="gourmetgram generate-large-dataset",
        description=GENERATE_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=large_dataset.DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--commit-rows", type=int, default=2_500_000)
    args = parser.parse_args(argv)
    logs.setup()
    t0 = time.monotonic()
    commits = large_dataset.generate(
        load_catalog(), rows=args.rows, seed=args.seed, batch_rows=args.batch_rows, commit_rows=args.commit_rows
    )
    print(f"wrote {args.rows:,} rows in {commits} commits, {time.monotonic() - t0:.1f} s")
