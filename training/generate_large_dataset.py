#!/usr/bin/env python3
"""Lab step 7a: create moderation.large_training_data (default 10M rows, seeded).

    python training/generate_large_dataset.py [--rows 10000000] [--seed 42]

Catalog from DATABASE_URL / S3_* or PYICEBERG_CATALOG__GOURMETGRAM__* (gourmetgram.etl.catalog).
"""

from __future__ import annotations

import argparse
import time

from gourmetgram.common import logs
from gourmetgram.etl.catalog import load_catalog
from gourmetgram.training import large_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=large_dataset.DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--commit-rows", type=int, default=2_500_000)
    args = parser.parse_args()
    logs.setup()
    t0 = time.monotonic()
    commits = large_dataset.generate(
        load_catalog(), rows=args.rows, seed=args.seed, batch_rows=args.batch_rows, commit_rows=args.commit_rows
    )
    print(f"wrote {args.rows:,} rows in {commits} commits, {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
