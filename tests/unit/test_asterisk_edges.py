"""The Asterisk adapter's edges (stream/asterisk.py): the last valid second of year 9999, the
memory kept with the position (a closed call id remembered for an hour of log time, a call
with no line for a day forgotten, its agent no longer busy), per-queue pauses and UNPAUSEALL,
and a transfer decided while other calls wait. Expectations by hand from docs/adapters.md
("Asterisk queue_log": the mapping table and "Memory"), the spec's adapters.md and events.md
(ts within years 1970-9999); the lines follow the Asterisk "Queue Logs" page's format."""

from __future__ import annotations

import pytest

from ccmon.stream.asterisk import QueueLog

H = 1_772_438_400  # 2026-03-02T08:00:00Z, the start of an hour of log time
HOUR, DAY = 3600, 86_400


def line(ts: int, callid: str, queue: str, agent: str, event: str, *data: str) -> bytes:
    return "|".join([str(ts), callid, queue, agent, event, *data]).encode() + b"\n"


def feed(mapper: QueueLog, *lines: bytes) -> list[dict]:
    return [e for raw in lines for e in mapper.feed(raw).events]


def test_the_last_second_of_year_9999_is_a_valid_epoch():
    # events.md: ts within years 1970-9999; 9999-12-31T23:59:59Z is 253402300799 (12 digits).
    outcome = QueueLog().feed(line(253_402_300_799, "c", "q", "NONE", "ENTERQUEUE", "", "5"))
    assert outcome.malformed is None
    assert [(e["type"], e["ts"]) for e in outcome.events] == [("contact.queued", 253_402_300_799)]


@pytest.mark.parametrize(("closed_at", "remembered"), [(H + 1, True), (H, False)])
def test_a_closed_call_id_is_remembered_for_an_hour_of_log_time(closed_at, remembered):
    """Memory: the state kept holds the call ids closed within the last hour. At H + 3600
    (an hour's first line) one closed 3599 s before is still there, one closed 3600 s before
    is not; the one remembered numbers the call's re-entry as a new contact `c#2`."""
    mapper = QueueLog()
    feed(mapper, line(H - 5, "c", "q", "NONE", "ENTERQUEUE", "", "5"),
         line(closed_at, "c", "q", "NONE", "ABANDON", "1", "1", "5"))
    feed(mapper, line(H + HOUR, "NONE", "NONE", "NONE", "QUEUESTART", ""))
    assert ("c" in mapper.to_json()["closed"]) is remembered
    if remembered:
        queued = feed(mapper, line(H + HOUR, "c", "q", "NONE", "ENTERQUEUE", "", "5"))
        assert [e["contact_id"] for e in queued] == ["c#2"]


@pytest.mark.parametrize(("silence", "forgotten"),
                         [(DAY - 1, False), (DAY, True), (DAY + HOUR - 1, True)])
def test_a_call_with_no_line_for_a_day_of_log_time_is_forgotten(silence, forgotten):
    """Memory: a call with no line for a day of log time is forgotten without an outcome, so
    its late CONNECT is a call never seen (`unknown_call`); a day less a second is not yet."""
    mapper = QueueLog()
    feed(mapper, line(H + 1, "c", "q", "NONE", "ENTERQUEUE", "", "5"))
    outcome = mapper.feed(line(H + 1 + silence, "c", "q", "a1", "CONNECT", "1", "x", "1"))
    if forgotten:
        assert (outcome.events, outcome.skipped) == ([], "unknown_call")
        assert mapper.to_json()["calls"] == {}
    else:
        assert [e["type"] for e in outcome.events] == ["contact.answered", "agent.state"]


def test_the_agent_of_a_forgotten_call_is_no_longer_busy():
    # busy runs from CONNECT to the call's end; a call forgotten after a day of silence is no
    # longer open, and nothing is invented for it (no contact.ended): the agent's next line
    # (ADDMEMBER q2) finds it available in q1 and q2.
    mapper = QueueLog()
    busy = feed(mapper, line(H, "c", "q1", "NONE", "ENTERQUEUE", "", "5"),
                line(H + 1, "c", "q1", "a1", "CONNECT", "1", "x", "1"))
    assert (busy[-1]["state"], busy[-1]["queues"]) == ("busy", ["q1"])
    later = feed(mapper, line(H + 1 + DAY, "NONE", "q2", "a1", "ADDMEMBER", ""))
    assert [(e["type"], e["ts"], e["state"], e["queues"]) for e in later] == [
        ("agent.state", H + 1 + DAY, "available", ["q1", "q2"])]


def agent_in_two_queues() -> QueueLog:
    mapper = QueueLog()
    feed(mapper, line(H, "NONE", "q1", "a1", "ADDMEMBER", ""),
         line(H + 1, "NONE", "q2", "a1", "ADDMEMBER", ""))
    return mapper


def states(events: list[dict]) -> list[str]:
    return [e["state"] for e in events if e["type"] == "agent.state"]


def test_a_pause_in_one_queue_ends_with_that_queues_unpause():
    # PAUSE q1 pauses q1 only: the agent is away, and available again once q1 is unpaused.
    mapper = agent_in_two_queues()
    assert states(feed(mapper, line(H + 2, "NONE", "q1", "a1", "PAUSE", "lunch"))) == ["away"]
    assert states(feed(mapper, line(H + 3, "NONE", "q1", "a1", "UNPAUSE", ""))) == ["available"]


@pytest.mark.parametrize("queue", ["NONE", "q1"])
def test_unpauseall_ends_the_pauses_of_every_queue(queue):
    # Paused in q1 and q2, the agent is back to available at UNPAUSEALL, whatever queue field
    # its line carries (Asterisk writes NONE; a named one still means all queues).
    mapper = agent_in_two_queues()
    feed(mapper, line(H + 2, "NONE", "q1", "a1", "PAUSE", ""),
         line(H + 3, "NONE", "q2", "a1", "PAUSE", ""))
    assert states(feed(mapper, line(H + 4, "NONE", queue, "a1", "UNPAUSEALL", ""))) == [
        "available"]


def test_a_transfer_ends_at_its_line_while_an_earlier_call_still_waits():
    # The transfer of c at H + 10 gets no ENTERQUEUE: the first line more than 10 s later
    # (H + 21) ends c at H + 10; w, which entered first and still waits, changes nothing.
    mapper = QueueLog()
    feed(mapper, line(H, "w", "q", "NONE", "ENTERQUEUE", "", "5"),
         line(H + 1, "c", "q", "NONE", "ENTERQUEUE", "", "6"),
         line(H + 2, "c", "q", "a1", "CONNECT", "1", "x", "1"),
         line(H + 10, "c", "q", "a1", "BLINDTRANSFER", "700", "ctx", "1", "8", "1"))
    ended = feed(mapper, line(H + 21, "NONE", "NONE", "NONE", "QUEUESTART", ""))
    assert [(e["type"], e["contact_id"], e["ts"]) for e in ended] == [
        ("contact.ended", "c", H + 10)]
    assert mapper.finish() == []
