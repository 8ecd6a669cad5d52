"""Rule-based moderation scorer with the lab's four signals, all reachable."""

from __future__ import annotations

from dataclasses import dataclass, field

from gourmetgram.common import names
from gourmetgram.common.model_artifacts import recommendation_for


@dataclass(frozen=True, slots=True)
class HeuristicSignals:
    total_flags: int
    comments_1min: int
    views_5min: int
    comments_5min: int
    views_1hr: int
    comments_1hr: int
    total_views: int
    total_comments: int


@dataclass(frozen=True, slots=True)
class HeuristicResult:
    probability: float
    recommendation: str
    reasoning: list[str] = field(default_factory=list)
    risk_factors: dict[str, float] = field(default_factory=dict)


def score(s: HeuristicSignals, flag_threshold: float = names.FLAG_THRESHOLD) -> HeuristicResult:
    w = names.HEURISTIC_WEIGHTS
    fired: dict[str, float] = {}
    reasons: list[str] = []
    if s.total_flags > 0:
        fired["flags_reported"] = w["flags_reported"]
        reasons.append(f"{s.total_flags} user flag(s) reported")
    if s.comments_1min >= names.HEURISTIC_SPAM_COMMENTS_1MIN:
        fired["comment_spam"] = w["comment_spam"]
        reasons.append(f"comment spam: {s.comments_1min} comments in 1 minute")
    ratio = s.comments_1hr / max(s.views_1hr, 1)
    if ratio > names.HEURISTIC_RATIO_THRESHOLD:
        fired["unusual_engagement"] = w["unusual_engagement"]
        reasons.append(f"comment-to-view ratio {ratio:.2f} > {names.HEURISTIC_RATIO_THRESHOLD}")
    burst_without_engagement = (
        s.views_5min >= names.HEURISTIC_BOT_VIEWS_5MIN
        and s.comments_5min / max(s.views_5min, 1) < names.HEURISTIC_BOT_MAX_ENGAGEMENT
    )
    comments_without_audience = (
        s.total_comments > names.HEURISTIC_BOT_COMMENTS_TOTAL and s.total_views < names.HEURISTIC_BOT_VIEWS_TOTAL
    )
    if burst_without_engagement or comments_without_audience:
        fired["bot_pattern"] = w["bot_pattern"]
        reasons.append(
            f"bot-like pattern: {s.views_5min} views in 5 min with {s.comments_5min} comments"
            if burst_without_engagement
            else f"bot-like pattern: {s.total_comments} comments on {s.total_views} views"
        )
    probability = round(min(1.0, max(0.0, sum(fired.values()))), 6)
    if not reasons:
        reasons.append("no risk signals")
    return HeuristicResult(probability, recommendation_for(probability, flag_threshold), reasons, fired)
