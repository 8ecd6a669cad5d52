from datetime import UTC, datetime, timedelta

import pytest

from gourmetgram.common import features, names
from gourmetgram.common.features import FeatureInputs

UPLOAD = datetime(2026, 11, 28, 22, 15, tzinfo=UTC)  # a Saturday


def inputs(**kw):
    base = dict(
        uploaded_at=UPLOAD,
        decision_time=UPLOAD + timedelta(minutes=30),
        views_5min=10,
        views_1hr=40,
        comments_5min=2,
        comments_1hr=8,
        caption="crispy",
        category="Fried food",
        user_image_count=3,
        user_created_at=UPLOAD - timedelta(days=9, hours=1),
    )
    base.update(kw)
    return FeatureInputs(**base)


def test_twenty_six_named_features_in_fixed_order():
    assert len(features.FEATURE_NAMES) == 26
    assert features.FEATURE_NAMES[0] == "time_since_upload_seconds"
    assert features.FEATURE_NAMES[15:] == features.CATEGORY_FEATURES


def test_compute_features_values():
    f = features.compute_features(inputs())
    assert f["time_since_upload_seconds"] == 1800
    assert (f["hour_of_day"], f["day_of_week"], f["is_weekend"]) == (22, 5, 1)
    assert f["view_velocity_per_min"] == 2.0
    assert f["comment_to_view_ratio"] == pytest.approx(0.2)
    assert f["recent_engagement_score"] == 20.0
    assert (f["caption_length"], f["has_caption"]) == (6, 1)
    assert f["user_age_days"] == 9
    assert f["category_Fried"] == 1.0
    assert sum(f[c] for c in features.CATEGORY_FEATURES) == 1.0


def test_unknown_category_is_all_zero_and_class_dirs_map():
    f = features.compute_features(inputs(category="pizza"))
    assert sum(f[c] for c in features.CATEGORY_FEATURES) == 0.0
    assert features.normalise_category("class_07") == "Rice"
    assert features.normalise_category(None) == names.UNKNOWN_CATEGORY


def test_ratio_never_divides_by_zero():
    f = features.compute_features(inputs(views_1hr=0, comments_1hr=3))
    assert f["comment_to_view_ratio"] == 3.0


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        inputs(decision_time=datetime(2026, 1, 1))


def test_window_counts_are_closed_intervals_like_zcount():
    ts = [100.0, 200.0, 400.0, 700.0, 701.0]
    assert features.count_in_window(ts, 700.0, 300) == 2  # 400 <= t <= 700
    assert features.count_in_window(ts, 700.0, 600) == 4  # [100, 700]: both ends inclusive
    assert features.count_in_window(ts, 99.0, 300) == 0
    w = features.window_counts([10.0, 320.0, 600.0], [590.0], 600.0)
    assert w == {"views_5min": 2, "views_1hr": 3, "comments_5min": 1, "comments_1hr": 1}


def test_model_inputs_round_trip_from_vector_and_rows():
    vec = features.feature_vector(inputs())
    num_v, cat_v = features.model_inputs_from_vector(list(vec))
    row = features.training_row(features.compute_features(inputs()), "Fried food")
    num_r, cat_r = features.model_inputs_from_rows([row])
    assert num_v.tolist() == num_r.tolist()
    assert cat_v.tolist() == cat_r.tolist() == [["1", "1", "Fried food"]]
