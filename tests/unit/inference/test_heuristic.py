import pytest

from gourmetgram.common import names
from gourmetgram.inference.heuristic import HeuristicSignals, score


def signals(**kw):
    base = dict(
        total_flags=0,
        comments_1min=0,
        views_5min=0,
        comments_5min=0,
        views_1hr=0,
        comments_1hr=0,
        total_views=0,
        total_comments=0,
    )
    base.update(kw)
    return HeuristicSignals(**base)


def test_no_signals_is_safe():
    r = score(signals(views_5min=5, views_1hr=5, comments_1hr=2, total_views=5, total_comments=2))
    assert (r.probability, r.recommendation) == (0.0, names.SAFE)


def test_plain_viral_burst_lands_in_review():
    r = score(signals(views_5min=110, views_1hr=110, total_views=110))
    assert r.recommendation == names.REVIEW
    assert set(r.risk_factors) == {"bot_pattern"}


def test_viral_burst_with_a_few_comments_is_still_review():
    r = score(
        signals(views_5min=110, views_1hr=110, comments_5min=3, comments_1hr=3, total_views=110, total_comments=3)
    )
    assert r.recommendation == names.REVIEW


def test_flags_plus_comment_spam_give_flag():
    r = score(
        signals(
            total_flags=2,
            comments_1min=12,
            comments_5min=12,
            comments_1hr=12,
            views_1hr=30,
            views_5min=30,
            total_views=30,
            total_comments=12,
        )
    )
    assert r.recommendation == names.FLAG
    assert {"flags_reported", "comment_spam"} <= set(r.risk_factors)


@pytest.mark.parametrize(
    ("kw", "factor"),
    [
        ({"total_flags": 1}, "flags_reported"),
        ({"comments_1min": 10}, "comment_spam"),
        ({"comments_1hr": 15, "views_1hr": 20}, "unusual_engagement"),
        ({"views_5min": 100}, "bot_pattern"),
        ({"total_comments": 51, "total_views": 20, "views_1hr": 200}, "bot_pattern"),
    ],
)
def test_each_of_the_four_signals_is_reachable(kw, factor):
    assert factor in score(signals(**kw)).risk_factors


def test_thresholds_are_inclusive_at_review_and_flag():
    assert score(signals(views_5min=100)).probability == pytest.approx(0.3)
    assert score(signals(views_5min=100)).recommendation == names.REVIEW
    r = score(signals(total_flags=1, comments_1min=10))  # 0.4 + 0.3 = 0.7
    assert r.recommendation == names.FLAG
