"""Create the given buckets if missing; print CREATED <name> per new bucket. Credentials from env."""

import json
import os
import sys

import boto3
from botocore.config import Config

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
)
existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
for name in json.loads(sys.argv[1]):
    if name not in existing:
        s3.create_bucket(Bucket=name)
        print(f"CREATED {name}")
    else:
        print(f"OK {name}")
