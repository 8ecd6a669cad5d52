"""The Iceberg catalog ``gourmetgram`` (pyiceberg SQL catalog in the app's Postgres database,
warehouse ``s3://gourmetgram-datalake/warehouse`` on MinIO) and the tables' explicit schemas.

Schemas are declared here, never inferred from a DataFrame, and every timestamp is microsecond
UTC (``timestamptz``); :func:`to_arrow` casts frames to them so a pandas nanosecond column can
never make an append fail. A missing table (``NoSuchTableError``) is the only condition that
creates one; any other error propagates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog import load_catalog as _pyiceberg_load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.expressions import And, BooleanExpression, GreaterThanOrEqual, LessThan
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    DoubleType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from gourmetgram.common import db, features, names
from gourmetgram.common.logs import event, get_logger

log = get_logger("etl.catalog")

_ENV_PREFIX = f"PYICEBERG_CATALOG__{names.ICEBERG_CATALOG.upper()}__"


def catalog_properties(settings: Any) -> dict[str, str]:
    """pyiceberg properties for our catalog from EtlSettings-like settings (DATABASE_URL, S3_*)."""
    return {
        "type": "sql",
        "uri": db.sqlalchemy_url(settings.database_url.get_secret_value()),
        "warehouse": getattr(settings, "warehouse", names.WAREHOUSE_URI),
        "s3.endpoint": settings.s3_endpoint_url,
        "s3.access-key-id": settings.aws_access_key_id,
        "s3.secret-access-key": settings.aws_secret_access_key.get_secret_value(),
        "s3.region": getattr(settings, "aws_region", "us-east-1"),
        "s3.force-virtual-addressing": "false",
        # Create the catalog tables (iceberg_tables, iceberg_namespace_properties) on first use.
        "init_catalog_tables": "true",
        # Check pooled connections before use: a PostgreSQL restart must not fail the next task.
        "pool_pre_ping": "true",
    }


def _env_keys() -> set[str]:
    """Property keys set through PYICEBERG_CATALOG__GOURMETGRAM__* (``__`` → ``.``, ``_`` → ``-``)."""
    keys = set()
    for var in os.environ:
        if var.startswith(_ENV_PREFIX):
            keys.add(var[len(_ENV_PREFIX) :].lower().replace("__", ".").replace("_", "-"))
    return keys


def load_catalog(settings: Any | None = None) -> Catalog:
    """The ``gourmetgram`` catalog.

    Properties come from ``settings`` (default: EtlSettings from the environment). Properties
    set through ``PYICEBERG_CATALOG__GOURMETGRAM__*`` (as the lab's notebooks do) win over the
    derived ones; with only those variables set (no DATABASE_URL), they alone are used.
    """
    props: dict[str, str] = {}
    if settings is None:
        from pydantic import ValidationError

        from gourmetgram.etl.config import settings_from_env

        try:
            settings = settings_from_env()
        except ValidationError:
            if not _env_keys():
                raise
            settings = None
    if settings is not None:
        props = catalog_properties(settings)
    for key in _env_keys():
        props.pop(key, None)  # pyiceberg merges its env config under explicit properties
    return _pyiceberg_load_catalog(names.ICEBERG_CATALOG, **props)


def split_identifier(identifier: str) -> tuple[str, str]:
    namespace, _, table = identifier.rpartition(".")
    return namespace, table


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    try:
        catalog.create_namespace(namespace)
        event(log, "namespace_created", namespace=namespace)
    except NamespaceAlreadyExistsError:
        pass


def load_table(catalog: Catalog, identifier: str) -> Table | None:
    """The table, or None if it does not exist (other errors propagate)."""
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        return None


def open_table(catalog: Catalog, identifier: str) -> Table:
    """The table, or a :class:`~gourmetgram.common.errors.MissingTable` saying how to create it."""
    from gourmetgram.common.errors import MissingTable

    table = load_table(catalog, identifier)
    if table is None:
        raise MissingTable(identifier)
    return table


def ensure_table(
    catalog: Catalog, identifier: str, schema: Schema, properties: Mapping[str, str] | None = None
) -> Table:
    table = load_table(catalog, identifier)
    if table is not None:
        _check_schema(identifier, table.schema(), schema)
        return table
    ensure_namespace(catalog, split_identifier(identifier)[0])
    try:
        table = catalog.create_table(identifier, schema=schema, properties=dict(properties or {}))
        event(log, "table_created", table=identifier)
        return table
    except TableAlreadyExistsError:  # created concurrently
        return catalog.load_table(identifier)


def _check_schema(identifier: str, actual: Schema, expected: Schema) -> None:
    got = [(f.name, str(f.field_type)) for f in actual.fields]
    want = [(f.name, str(f.field_type)) for f in expected.fields]
    if got != want:
        raise RuntimeError(f"{identifier} exists with another schema: {got} != {want}; migrate or drop it explicitly")


def interval_filter(column: str, start: datetime, end: datetime) -> BooleanExpression:
    """``start <= column < end`` (timestamps as ISO strings with offset)."""
    return And(GreaterThanOrEqual(column, start.isoformat()), LessThan(column, end.isoformat()))


# --- schemas ----------------------------------------------------------------------------------
def _schema(*fields: tuple[str, Any, bool]) -> Schema:
    return Schema(*(NestedField(i, name, typ, required=req) for i, (name, typ, req) in enumerate(fields, start=1)))


WINDOW_SCHEMA = _schema(
    ("image_id", StringType(), True),
    ("window_start", TimestamptzType(), True),
    ("window_end", TimestamptzType(), True),
    ("event_count", LongType(), True),
    ("processed_at", TimestamptzType(), True),
)

EVENTS_SCHEMA = _schema(
    ("event_id", StringType(), True),
    ("event_type", StringType(), True),
    ("image_id", StringType(), True),
    ("event_time", TimestamptzType(), True),
    ("processed_at", TimestamptzType(), True),
)

_DOUBLE_FEATURES = ("view_velocity_per_min", "comment_to_view_ratio", "recent_engagement_score")

TRAINING_SCHEMA = _schema(
    ("image_id", StringType(), True),
    ("decision_point_minutes", LongType(), True),
    ("decision_time", TimestamptzType(), True),
    *(
        (
            col,
            StringType() if col == "category" else DoubleType() if col in _DOUBLE_FEATURES else LongType(),
            True,
        )
        for col in features.TRAINING_FEATURE_COLUMNS
    ),
    (names.LABEL_COLUMN, LongType(), True),
)

TRAINING_COLUMNS = tuple(f.name for f in TRAINING_SCHEMA.fields)

# Small row groups so a streaming scan yields bounded batches (the lab's ArrowBatchReader lesson).
TRAINING_TABLE_PROPERTIES = {"write.parquet.row-group-limit": "65536"}


def to_arrow(frame: Any, schema: Schema) -> pa.Table:
    """A pandas DataFrame cast to the Iceberg schema: exact columns, us UTC timestamps, no nulls
    in required fields (pyarrow raises on any that would be lost)."""
    arrow_schema = schema.as_arrow()
    columns = []
    for field in arrow_schema:
        col = frame[field.name]
        if pa.types.is_timestamp(field.type):
            import pandas as pd

            col = pd.to_datetime(col, utc=True).dt.as_unit("us")
        columns.append(pa.array(col, type=field.type, from_pandas=True))
    table = pa.Table.from_arrays(columns, schema=arrow_schema)
    for field, column in zip(arrow_schema, table.columns, strict=True):
        if not field.nullable and column.null_count:
            raise ValueError(f"column {field.name} has {column.null_count} nulls")
    return table
