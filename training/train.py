#!/usr/bin/env python3
"""Lab step 7 without a notebook: stream-train on an Iceberg table, write metrics and plots,
optionally publish the artifacts for the inference service.

    python training/train.py [--table moderation.training_data] [--epochs 3] [--out models/] [--publish]
"""

from __future__ import annotations

import argparse
import json

from gourmetgram.common import logs, names
from gourmetgram.common.storage import s3_client
from gourmetgram.etl.catalog import load_catalog
from gourmetgram.etl.config import settings_from_env
from gourmetgram.training import publish, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=names.ICEBERG_TRAINING_DATA)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=32_768)
    parser.add_argument("--test-percent", type=int, default=20)
    parser.add_argument("--out", default="models")
    parser.add_argument("--publish", action="store_true", help="upload to s3://gourmetgram-datalake/models/moderation/")
    args = parser.parse_args()
    logs.setup()
    settings = settings_from_env()
    table = load_catalog(settings).load_table(args.table)
    result = trainer.train_streaming(
        trainer.batch_source(table, args.batch_rows), epochs=args.epochs, test_percent=args.test_percent
    )
    trainer.save_plots(result, args.out)
    print(json.dumps(result.metrics, indent=2))
    if args.publish:
        meta = publish.publish(s3_client(settings), result, settings.datalake_bucket)
        print(f"published model version {meta.version} to s3://{settings.datalake_bucket}/{names.MODEL_PREFIX}")


if __name__ == "__main__":
    main()
