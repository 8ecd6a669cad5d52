"""S3 (MinIO) client construction."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from gourmetgram.common.settings import S3Settings


def s3_client(settings: S3Settings, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key.get_secret_value(),
        region_name=settings.aws_region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=config.pop("connect_timeout", 5),
            read_timeout=config.pop("read_timeout", 30),
            **config,
        ),
    )
