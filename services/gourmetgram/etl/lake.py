"""Parquet objects on MinIO (raw extracts and staging between DAG tasks)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from gourmetgram.common.logs import event, get_logger

log = get_logger("etl.lake")


def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        s3.create_bucket(Bucket=bucket)
        event(log, "bucket_created", bucket=bucket)


def put_parquet(s3: Any, bucket: str, key: str, table: pa.Table) -> str:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue(), ContentType="application/vnd.apache.parquet")
    return f"s3://{bucket}/{key}"


def get_parquet(s3: Any, bucket: str, key: str) -> pa.Table:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Remove every object under ``prefix`` (a rerun overwrites its own partition)."""
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted
