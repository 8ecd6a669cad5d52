"""Postgres → raw Parquet → features → ``moderation.training_data`` (DAG ``etl_moderation``).

* extract: users, images, comments, flags and image_milestones, rows created at or before the
  run's cutoff, to ``raw/<table>/ds=<date>/<table>.parquet`` (one partition per run date; a
  re-run replaces only its own partition, earlier dates are kept).
* transform: for every image whose label horizon has elapsed by the cutoff, one row per
  decision point (0, 5, 30 min after upload) that is itself ≤ cutoff. The features are
  :func:`gourmetgram.common.features.compute_features` — the same function inference uses —
  fed with exact closed-window counts ``[t − W, t]`` over ``event_aggregations.events`` (the same
  Kafka events the stream consumer counts in Redis), ``user_image_count`` = the user's images
  uploaded ≤ t, and user age at t. Nothing after t enters a feature.
  label = the image was flagged (``flags.image_id``) within the horizon after upload; images
  younger than the horizon are left out, never labelled 0 (their outcome is not known yet), and
  counted as ``waiting`` in the table's snapshot summary.
* load: overwrite the whole table — it is a snapshot as of the cutoff, so re-running leaves
  exactly the same rows. The snapshot summary records cutoff, horizon, rows, positives and
  waiting images; ``gourmetgram verify-pipeline`` prints them.

The cutoff: the ``cutoff`` param, else the run's data interval end (for Airflow 3 toggled or
triggered runs, whose interval has zero length, the run time) — and never later than
``event_aggregations.events`` is complete (:func:`effective_cutoff`), so a feature
window never reaches past the events the aggregation DAG has read.

The trade-off of the default horizon (``names.LABEL_HORIZON_MINUTES`` = 5 min): a lab session
is minutes long, so the lab's 24 h would leave every image unlabelled; 5 minutes labels every
image older than 5 minutes, and "flagged within 5 minutes" is a much rarer, noisier target than
"flagged within a day" (in production, set 24 h: rows then appear a day after the upload).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import text

from gourmetgram.common import db, features, names
from gourmetgram.common.logs import event, get_logger
from gourmetgram.etl import catalog as cat
from gourmetgram.etl import lake

log = get_logger("etl.moderation")

# Column whose value says when a row came to exist (rows after the cutoff are not extracted).
CREATED_COLUMN = {
    names.TABLE_USERS: "created_at",
    names.TABLE_IMAGES: "uploaded_at",
    names.TABLE_COMMENTS: "created_at",
    names.TABLE_FLAGS: "created_at",
    names.TABLE_MILESTONES: "reached_at",
}
US = np.int64(1)
WINDOW_US = {"5min": names.WINDOW_5MIN * 1_000_000, "1hr": names.WINDOW_1HR * 1_000_000}


SUMMARY_PREFIX = "gourmetgram."


class MissingEventsTable(RuntimeError):
    pass


def effective_cutoff(catalog: Any, requested: datetime) -> datetime:
    """``requested``, capped at the instant up to which ``event_aggregations.events`` is complete."""
    from gourmetgram.etl.aggregation import covered_until

    if cat.load_table(catalog, names.ICEBERG_EVENTS) is None:
        raise MissingEventsTable(
            f"{names.ICEBERG_EVENTS} does not exist yet: turn on (or trigger) the {names.DAG_AGGREGATION} DAG, "
            f"wait until its run is green, then run {names.DAG_ETL} again"
        )
    covered = covered_until(catalog)
    cutoff = min(requested, covered) if covered is not None else requested
    event(
        log,
        "cutoff",
        requested=requested.isoformat(),
        events_complete_until=covered and covered.isoformat(),
        cutoff=cutoff.isoformat(),
    )
    return cutoff


# --- extract -----------------------------------------------------------------------------------
def raw_key(table: str, ds: str) -> str:
    return f"{names.RAW_PREFIX}{table}/ds={ds}/{table}.parquet"


def _frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            out[col] = pd.to_datetime(series, utc=True).dt.as_unit("us")
        elif series.dtype == object and series.map(lambda v: v is not None and not isinstance(v, str)).any():
            out[col] = series.map(lambda v: None if v is None else str(v))  # UUIDs
    return pa.Table.from_pandas(out, preserve_index=False)


def extract(settings: Any, s3: Any, ds: str, cutoff: datetime) -> dict[str, Any]:
    engine = db.engine_for(settings.database_url.get_secret_value())
    lake.ensure_bucket(s3, settings.datalake_bucket)
    out: dict[str, Any] = {"ds": ds, "cutoff": cutoff.isoformat(), "tables": {}}
    with engine.connect() as conn:
        for table in names.EXTRACTED_TABLES:
            column = CREATED_COLUMN[table]
            frame = pd.read_sql_query(
                text(f"SELECT * FROM {table} WHERE {column} <= :cutoff ORDER BY {column}, id"),
                conn,
                params={"cutoff": cutoff},
            )
            prefix = f"{names.RAW_PREFIX}{table}/ds={ds}/"
            lake.delete_prefix(s3, settings.datalake_bucket, prefix)
            uri = lake.put_parquet(s3, settings.datalake_bucket, raw_key(table, ds), _frame_to_arrow(frame))
            out["tables"][table] = {"uri": uri, "rows": len(frame)}
            event(log, "extracted", table=table, rows=len(frame), uri=uri)
    return out


def read_raw(s3: Any, uri: str) -> pd.DataFrame:
    frame = lake.get_parquet(s3, *lake.split_uri(uri)).to_pandas()
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = pd.to_datetime(frame[col], utc=True).dt.as_unit("us")
    return frame


# --- vectorised closed-window counting -----------------------------------------------------------
def _epoch_us(series: pd.Series) -> np.ndarray:
    return pd.to_datetime(series, utc=True).dt.tz_convert(None).astype("datetime64[us]").to_numpy().astype(np.int64)


def closed_window_counts(
    event_keys: np.ndarray,
    event_us: np.ndarray,
    query_keys: np.ndarray,
    query_us: np.ndarray,
    window_us: int | None,
) -> np.ndarray:
    """For each query (key, t): the number of events of that key with ``t − W ≤ ts ≤ t``
    (``W = None``: all events ≤ t). O((events + queries) log) — the batch twin of ZCOUNT."""
    if len(query_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    codes, _uniques = pd.factorize(
        np.concatenate([np.asarray(event_keys, dtype=object), np.asarray(query_keys, dtype=object)])
    )
    ev_codes, q_codes = codes[: len(event_keys)].astype(np.int64), codes[len(event_keys) :].astype(np.int64)
    lower_us = query_us - window_us if window_us is not None else query_us
    times, inverse = np.unique(np.concatenate([event_us, query_us, lower_us]), return_inverse=True)
    span = np.int64(len(times) + 1)
    n_ev, n_q = len(event_us), len(query_us)
    ev_rank = inverse[:n_ev].astype(np.int64)
    q_rank = inverse[n_ev : n_ev + n_q].astype(np.int64)
    lo_rank = inverse[n_ev + n_q :].astype(np.int64) if window_us is not None else np.full(n_q, -1, np.int64)
    ev_comp = np.sort(ev_codes * span + ev_rank + 1)
    hi = np.searchsorted(ev_comp, q_codes * span + q_rank + 1, side="right")
    lo = np.searchsorted(ev_comp, q_codes * span + lo_rank + 1, side="left")
    return (hi - lo).astype(np.int64)


# --- transform -----------------------------------------------------------------------------------
def build_training_rows(
    users: pd.DataFrame,
    images: pd.DataFrame,
    flags: pd.DataFrame,
    events: pd.DataFrame,
    cutoff: datetime,
    label_horizon: timedelta,
    decision_points: Sequence[int] = names.DECISION_POINTS_MINUTES,
) -> pd.DataFrame:
    """The training rows (columns of catalog.TRAINING_SCHEMA). Inputs are the raw tables
    (``id`` columns as strings, timestamps UTC) and the events (event_type, image_id, event_time)."""
    cutoff = pd.Timestamp(cutoff).tz_convert(UTC)
    images = images.assign(
        id=images["id"].astype(str),
        user_id=images["user_id"].astype(str),
        uploaded_at=pd.to_datetime(images["uploaded_at"], utc=True),
    )
    images = images[images["uploaded_at"] <= cutoff]
    users = users.assign(id=users["id"].astype(str), created_at=pd.to_datetime(users["created_at"], utc=True))
    eligible = images[images["uploaded_at"] + label_horizon <= cutoff]
    event(
        log,
        "eligible_images",
        images=len(images),
        eligible=len(eligible),
        too_young=len(images) - len(eligible),
        horizon_hours=label_horizon.total_seconds() / 3600,
    )
    if eligible.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cat.TRAINING_COLUMNS})

    # label: any flag on the image with upload <= created_at <= upload + horizon
    f = flags[flags["image_id"].notna()]
    f = f.assign(image_id=f["image_id"].astype(str), created_at=pd.to_datetime(f["created_at"], utc=True))
    f = f.merge(eligible[["id", "uploaded_at"]], left_on="image_id", right_on="id")
    hit = f[(f["created_at"] >= f["uploaded_at"]) & (f["created_at"] <= f["uploaded_at"] + label_horizon)]
    flagged = set(hit["image_id"])

    # one row per (image, decision point <= cutoff)
    rows = pd.concat([eligible.assign(decision_point_minutes=m) for m in decision_points], ignore_index=True)
    rows["decision_time"] = rows["uploaded_at"] + pd.to_timedelta(rows["decision_point_minutes"], unit="min")
    rows = rows[rows["decision_time"] <= cutoff].reset_index(drop=True)
    rows = rows.merge(
        users[["id", "created_at"]].rename(columns={"id": "user_id", "created_at": "user_created_at"}),
        on="user_id",
        how="left",
        validate="many_to_one",
    )
    if rows["user_created_at"].isna().any():
        raise ValueError("images reference users missing from the users extract")

    t_us = _epoch_us(rows["decision_time"])
    ev = events[events["event_time"] <= cutoff]
    counts: dict[str, np.ndarray] = {}
    for etype, prefix in (("view", "views"), ("comment", "comments")):
        sub = ev[ev["event_type"] == etype]
        ev_keys = sub["image_id"].astype(str).to_numpy(dtype=object)
        ev_us = _epoch_us(sub["event_time"])
        for suffix, w in WINDOW_US.items():
            counts[f"{prefix}_{suffix}"] = closed_window_counts(
                ev_keys, ev_us, rows["id"].to_numpy(dtype=object), t_us, w
            )
    user_image_count = closed_window_counts(
        images["user_id"].to_numpy(dtype=object),
        _epoch_us(images["uploaded_at"]),
        rows["user_id"].to_numpy(dtype=object),
        t_us,
        None,
    )

    uploaded = rows["uploaded_at"].dt.to_pydatetime()
    decided = rows["decision_time"].dt.to_pydatetime()
    user_created = rows["user_created_at"].dt.to_pydatetime()
    captions = rows["caption"].astype(object).where(rows["caption"].notna(), None).tolist()
    categories = rows["category"].astype(object).where(rows["category"].notna(), None).tolist()
    out = []
    for i in range(len(rows)):
        inp = features.FeatureInputs(
            uploaded_at=uploaded[i],
            decision_time=decided[i],
            views_5min=int(counts["views_5min"][i]),
            views_1hr=int(counts["views_1hr"][i]),
            comments_5min=int(counts["comments_5min"][i]),
            comments_1hr=int(counts["comments_1hr"][i]),
            caption=captions[i],
            category=categories[i],
            user_image_count=int(user_image_count[i]),
            user_created_at=user_created[i],
        )
        out.append(features.training_row(features.compute_features(inp), categories[i]))
    result = pd.DataFrame(out, columns=list(features.TRAINING_FEATURE_COLUMNS))
    result.insert(0, "image_id", rows["id"].to_numpy())
    result.insert(1, "decision_point_minutes", rows["decision_point_minutes"].astype(np.int64).to_numpy())
    result.insert(2, "decision_time", rows["decision_time"].dt.as_unit("us").to_numpy())
    result["decision_time"] = pd.to_datetime(result["decision_time"], utc=True)
    result[names.LABEL_COLUMN] = rows["id"].isin(flagged).astype(np.int64).to_numpy()
    return result.sort_values(["image_id", "decision_point_minutes"], kind="stable").reset_index(drop=True)


def read_events(catalog: Any, since: datetime, cutoff: datetime) -> pd.DataFrame:
    """Views and comments with ``since ≤ event_time ≤ cutoff`` from event_aggregations.events."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThanOrEqual

    table = cat.load_table(catalog, names.ICEBERG_EVENTS)
    if table is None:
        raise MissingEventsTable(
            f"{names.ICEBERG_EVENTS} does not exist: run {names.DAG_AGGREGATION} for the period first"
        )
    row_filter = And(
        And(GreaterThanOrEqual("event_time", since.isoformat()), LessThanOrEqual("event_time", cutoff.isoformat())),
        In("event_type", ("view", "comment")),
    )
    frame = (
        table.scan(row_filter=row_filter, selected_fields=("event_id", "event_type", "image_id", "event_time"))
        .to_arrow()
        .to_pandas()
    )
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame.drop_duplicates("event_id")


def processed_key(ds: str) -> str:
    return f"processed/training_data/ds={ds}/training_data.parquet"


def transform(
    settings: Any, s3: Any, catalog: Any, extracted: dict[str, Any], label_horizon: timedelta
) -> dict[str, Any]:
    cutoff = datetime.fromisoformat(extracted["cutoff"])
    tables = {t: read_raw(s3, info["uri"]) for t, info in extracted["tables"].items()}
    images = tables[names.TABLE_IMAGES]
    since = (
        pd.to_datetime(images["uploaded_at"], utc=True).min().to_pydatetime() - timedelta(seconds=names.LONGEST_WINDOW)
        if len(images)
        else cutoff
    )
    events = read_events(catalog, since, cutoff)
    rows = build_training_rows(
        tables[names.TABLE_USERS], images, tables[names.TABLE_FLAGS], events, cutoff, label_horizon
    )
    uri = lake.put_parquet(
        s3, settings.datalake_bucket, processed_key(extracted["ds"]), cat.to_arrow(rows, cat.TRAINING_SCHEMA)
    )
    positives = int(rows[names.LABEL_COLUMN].sum()) if len(rows) else 0
    uploaded = pd.to_datetime(images["uploaded_at"], utc=True)
    waiting = int(((uploaded <= cutoff) & (uploaded + label_horizon > cutoff)).sum()) if len(images) else 0
    event(log, "transformed", rows=len(rows), positives=positives, waiting=waiting, events=len(events), uri=uri)
    return {
        "uri": uri,
        "rows": len(rows),
        "positives": positives,
        "waiting": waiting,
        "label_horizon_minutes": label_horizon.total_seconds() / 60,
        "cutoff": extracted["cutoff"],
    }


def summary_properties(transformed: dict[str, Any]) -> dict[str, str]:
    keys = ("cutoff", "label_horizon_minutes", "rows", "positives", "waiting")
    return {f"{SUMMARY_PREFIX}{k}": str(transformed[k]) for k in keys if k in transformed}


def load(s3: Any, catalog: Any, transformed: dict[str, Any]) -> int:
    arrow = lake.get_parquet(s3, *lake.split_uri(transformed["uri"]))
    arrow = cat.to_arrow(arrow.to_pandas(), cat.TRAINING_SCHEMA)
    table = cat.ensure_table(catalog, names.ICEBERG_TRAINING_DATA, cat.TRAINING_SCHEMA, cat.TRAINING_TABLE_PROPERTIES)
    # the table is a snapshot as of the cutoff: replace it whole
    table.overwrite(arrow, snapshot_properties=summary_properties(transformed))
    event(log, "loaded", table=names.ICEBERG_TRAINING_DATA, rows=arrow.num_rows)
    return arrow.num_rows


def run(
    settings: Any, ds: str, cutoff: datetime, label_horizon: timedelta, catalog: Any | None = None
) -> dict[str, Any]:
    from gourmetgram.common.storage import s3_client

    s3 = s3_client(settings)
    catalog = catalog or cat.load_catalog(settings)
    extracted = extract(settings, s3, ds, effective_cutoff(catalog, cutoff))
    transformed = transform(settings, s3, catalog, extracted, label_horizon)
    return {"extracted": extracted, "transformed": transformed, "loaded": load(s3, catalog, transformed)}
