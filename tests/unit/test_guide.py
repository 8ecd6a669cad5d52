"""tests/guide.py reads docs/lab.md as the deploy stage's script: its steps, commands and promised
outputs, and a matcher that holds the platform's real output to them."""

from __future__ import annotations

from tests import guide

# A consumer journal as journalctl prints it on a host (short format, logfmt message).
_AT = "Dec 02 13:41:12 e2e-1 gourmetgram-stream-consumer[811]: level=info logger=gourmetgram.stream-consumer"
JOURNAL = "\n".join(
    f"{_AT} {line}"
    for line in (
        'msg="Partition assignment" partitions=4',
        'msg="🎯 MILESTONE REACHED! Image 3f9a0c1d... hit 10 total views" image_id=3f9a0c1d-5b6e-4c1a milestone=10',
        'msg="🔥 VIRAL CONTENT ALERT! Image 77aa00bb... received 110 views in 5 minutes (threshold: 100)" views=110',
        'msg="Published moderation request for 77aa00bb... (trigger: viral)" request_id=9',
    )
)


def test_every_step_of_the_lab_is_a_section() -> None:
    keys = set(guide.sections())
    steps = {"1", "2 and 3", "4", "4a", "4b", "4c", "4d", "4e", "5a", "5b", "5c", "5d", "5e"}
    steps |= {"6a", "6b", "6c", "6d", "6e", "6f", "7a", "7b", "7c", "7d", "8a–8b", "8c", "8d", "8e"}
    assert steps <= keys, sorted(steps - keys)


def test_commands_and_their_promised_outputs() -> None:
    assert guide.section("5b").command() == "sudo gourmetgram simulate-viral"
    assert guide.section("5b").expected().lines[1] == "Publishing 110 view events to 'gourmetgram.views'..."
    bring_up, status = guide.section("2 and 3").runs()
    assert bring_up[0][0] == "provision/platform.sh up" and bring_up[1] is not None
    assert status == (["systemctl status 'gourmetgram-*'"], None)
    # 8d: the burst, then the inference log whose lines the guide shows
    (_burst, none), (follow, shown) = guide.section("8d").runs()
    assert none is None and follow == ["journalctl -u gourmetgram-inference -f"] and shown is not None
    assert guide.section("8e").sql()[0].startswith("SELECT inference_mode, COUNT(*), AVG(moderation_probability),")
    assert guide.section("6a").sql() == [f"SELECT COUNT(*) FROM {t}" for t in ("images", "comments", "flags")]
    tasks = guide.section("6c").quoted("turn green")
    assert tasks[0] == "consume_and_aggregate_events" and len(tasks) == 5, tasks
    assert guide.section("6d").quoted("turn green") == ["extract_data", "transform_features", "load_iceberg"]


def test_the_journal_holds_the_promised_lines() -> None:
    assert guide.unmatched(guide.section("5c").expected(), JOURNAL) == []
    # the milestone line of 4d is there; the popular line is optional, as the guide says
    assert guide.unmatched(guide.section("4d").expected(), JOURNAL, optional=("POPULAR",)) == []
    assert len(guide.unmatched(guide.section("4d").expected(), JOURNAL)) == 1


def test_an_image_id_pins_the_placeholder() -> None:
    assert guide.unmatched(guide.section("5c").expected(), JOURNAL, image="77aa00bb") == []
    missing = guide.unmatched(guide.section("5c").expected(), JOURNAL, image="3f9a0c1d")
    assert len(missing) == 2 and "VIRAL" in missing[0]


def test_words_markers_and_order_are_literal() -> None:
    expected = guide.section("5c").expected()
    assert guide.unmatched(expected, JOURNAL.replace("🔥 ", "")) == [expected.lines[0]]  # the marker
    assert guide.unmatched(expected, JOURNAL.replace("(trigger: viral)", "(trigger: flag)")) == [expected.lines[1]]
    alert, request = JOURNAL.splitlines()[2:4]
    swapped = JOURNAL.replace(alert, "@").replace(request, alert).replace("@", request)
    assert guide.unmatched(expected, swapped) == [expected.lines[1]]  # the request after the alert


def test_placeholders() -> None:
    shown = guide.line_pattern("GourmetGram is up on HOST_NAME (HOST):")
    assert shown.search("GourmetGram is up on e2e-1 (10.77.0.2):")
    assert not shown.search("GourmetGram is up on e2e-1:")
    assert guide.line_pattern("Row count: 246").search("Row count: 1,247")
    assert not guide.line_pattern("Row count: 246").search("Row count: none")
    assert guide.line_pattern("Simulating viral burst for image: a1b2c3d4-…").search(
        "Simulating viral burst for image: 0a1b2c3d-0000-4000-8000-000000000000"
    )
    assert not guide.line_pattern("Image a1b2c3d4...").search("Image 0A1B2C3D...")
