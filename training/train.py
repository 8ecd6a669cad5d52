#!/usr/bin/env python3
"""Lab step 7 without a notebook: stream-train on an Iceberg table, write metrics and plots,
optionally publish the artifacts for the inference service.

    python training/train.py [--table moderation.training_data] [--epochs 3] [--out models/] [--publish]
"""

from gourmetgram.training.cli import train_main

if __name__ == "__main__":
    train_main()
