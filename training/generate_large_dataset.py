#!/usr/bin/env python3
"""Lab step 7a: create moderation.large_training_data (default 10M rows, seeded).

    python training/generate_large_dataset.py [--rows 10000000] [--seed 42]

Catalog from DATABASE_URL / S3_* or PYICEBERG_CATALOG__GOURMETGRAM__* (gourmetgram.etl.catalog).
"""

from gourmetgram.training.cli import generate_main

if __name__ == "__main__":
    generate_main()
