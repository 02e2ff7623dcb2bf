"""The supervisors' agents view (alerts.md 1.1, "Agents for supervisors"), pure: stage one
credits the agent of a contact's latest answer, the boards keep per-agent samples, each
facts partition gives a partial and the gateway merges them. Expected values by hand.

The centre below, seconds after 09:00:00Z; billing's series live on one facts partition,
sales' on another, as a worker would have them:

- a7 lists billing and sales: available at 0, busy at 10 and again at 50 (a repeat: still
  busy since 10), acw at 145, available at 150 and again at 300: available since 150.
- b2 lists sales: available at 0, busy at 110, acw at 200.
- c1 (voice, billing): answered by a7 at 10, hold 60-90 (30 s), ended at 130 with 20 s of
  wrap: handle 140 s. An nps survey at 200 credits nobody (csat only).
- c2 (chat, sales): answered by a7 at 30, hold from 80, transferred (to sales) at 100: the
  hold closes there (20 s) and a7's segment too (70 s, by a transfer); answered by b2 at
  110, ended at 200 (handle 90 s); a csat 5 at 250 goes to b2, who answered it last.
- c3 (voice, billing): answered by a7 at 50, hold from 100 still open at the end at 140
  (hold 40 s, handle 90 s); a csat 3 at 400, long after it ended, counts at 400.
- c4 (voice, billing): answered at 70 without agent_id, ended at 170, csat 5 at 180: nobody
  is credited.

a7 over 15m at 420: segments 140 (ended), 70 (transferred), 90 (ended): handled 3,
transferred 1, handle 300 / 3 = 100 s; holds 30, 20, 40: 30 s; csat 3: 0 of 1 satisfied.
Over 5m at 420, (120, 420]: c1's end at 130 and c3's at 140 (with its hold), the survey:
handled 2, handle 115 s, hold 40 s. b2: handled 1, 90 s, no hold (null), csat 1.
"""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ccmon.alerts.agents_view import merge, partial, visible
from ccmon.alerts.tokens import Supervisor
from ccmon.stream import reps
from ccmon.stream.engine import EngineConfig, Intake, Record
from ccmon.stream.facts import Located
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.lifecycle import REP, Contact
from ccmon.stream.queues import Board
from tests.unit.test_engine import ev, ms

WINDOWS = (("5m", 300_000), ("15m", 900_000))
CONFIG = EngineConfig(windows=WINDOWS)


def agent(agent_id: str, t: float, state: str, *queues: str) -> dict:
    return ev("agent.state", t, agent_id=agent_id, state=state, queues=list(queues))


def contact(cid: str, queue: str, *steps: tuple) -> list[dict]:
    """`contact.queued` at 0 + the given (t, type, fields) steps."""
    return [ev("contact.queued", 0, contact_id=cid, queue=queue),
            *(ev(f"contact.{kind}", t, contact_id=cid, **fields) for t, kind, fields in steps)]


def survey(cid: str, t: float, kind: str, score: int) -> dict:
    return ev("survey.submitted", t, contact_id=cid, kind=kind, score=score)


AGENTS = [agent("a7", 0, "available", "billing", "sales"), agent("b2", 0, "available", "sales"),
          agent("a7", 10, "busy", "billing", "sales"), agent("a7", 50, "busy", "billing", "sales"),
          agent("b2", 110, "busy", "sales"), agent("a7", 145, "acw", "billing", "sales"),
          agent("a7", 150, "available", "billing", "sales"), agent("b2", 200, "acw", "sales"),
          agent("a7", 300, "available", "billing", "sales")]
VOICE = [*contact("c1", "billing", (10, "answered", {"agent_id": "a7"}), (60, "hold_started", {}),
                  (90, "hold_ended", {}), (130, "ended", {"wrap_seconds": 20})),
         *contact("c3", "billing", (50, "answered", {"agent_id": "a7"}),
                  (100, "hold_started", {}), (140, "ended", {})),
         *contact("c4", "billing", (70, "answered", {}), (170, "ended", {})),
         survey("c4", 180, "csat", 5), survey("c1", 200, "nps", 10), survey("c3", 400, "csat", 3)]
CHAT = [*contact("c2", "sales", (30, "answered", {"agent_id": "a7"}), (80, "hold_started", {}),
                 (100, "transferred", {"to_queue": "sales"}),
                 (110, "answered", {"agent_id": "b2"}), (200, "ended", {})),
        survey("c2", 250, "csat", 5)]
SOURCES = {"cc.agents:0": (None, AGENTS), "cc.voice:0": ("voice", VOICE),
           "cc.chat:0": ("chat", CHAT)}

A7_15M = {"agent_id": "a7", "state": "available", "since": "2026-11-22T09:02:30Z",
          "queues": ["billing", "sales"], "handled": 3, "handle_seconds_avg": 100.0,
          "hold_seconds_avg": 30.0, "transferred": 1, "csat_ratio": 0.0}
B2_15M = {"agent_id": "b2", "state": "acw", "since": "2026-11-22T09:03:20Z", "queues": ["sales"],
          "handled": 1, "handle_seconds_avg": 90.0, "hold_seconds_avg": None, "transferred": 0,
          "csat_ratio": 1.0}


class Centre:
    """Stage one, and a board per facts partition: billing's series on one, sales' on the
    other."""

    def __init__(self) -> None:
        self.intake = Intake(CONFIG)
        self.boards = {queue: new_board() for queue in ("billing", "sales")}
        self.offsets: Counter[str] = Counter()
        self.facts: list[Located] = []

    def feed(self, source: str, events: list[dict]) -> None:
        channel = SOURCES[source][0]
        first = self.offsets[source]
        records = [Record(source, offset, channel, orjson.dumps(event))
                   for offset, event in enumerate(events, first)]
        self.offsets[source] += len(events)
        facts, dead = self.intake.take(0, records)
        assert dead == []
        self.facts += facts
        self.apply(facts)

    def apply(self, facts: list[Located]) -> None:
        for queue, board in self.boards.items():
            apply_facts(board, [located for located in facts if located[0] == queue])

    def view(self, now: float, window: str = "15m") -> list[dict] | None:
        return merge([partial(board, ms(now), at=0) for board in self.boards.values()], window)


def new_board() -> Board:
    return Board(CONFIG.windows, CONFIG.thresholds, CONFIG.timezone)


def whole_centre() -> Centre:
    centre = Centre()
    for source, (_, events) in SOURCES.items():
        centre.feed(source, events)
    return centre


def test_each_agent_is_credited_with_what_closed_under_it_across_queues():
    assert whole_centre().view(420) == [A7_15M, B2_15M]


def test_the_5m_window_and_its_edge():
    centre = whole_centre()
    assert centre.view(420, "5m") == [
        {**A7_15M, "handled": 2, "handle_seconds_avg": 115.0, "hold_seconds_avg": 40.0,
         "transferred": 0},
        B2_15M]
    # (130, 430]: c1's end at 130 is on the edge, out; just before, in.
    assert centre.view(429.999, "5m")[0]["handled"] == 2
    [a7, _] = centre.view(430, "5m")
    assert (a7["handled"], a7["handle_seconds_avg"], a7["hold_seconds_avg"]) == (1, 90.0, 40.0)


def test_the_rep_facts_come_after_the_closing_facts_of_their_event():
    """Addressed like the fact they credit, after every other fact of the event, so the older
    facts keep the positions they had before agents were credited."""
    intake = Intake(CONFIG)
    records = [Record("cc.chat:0", offset, "chat", orjson.dumps(event))
               for offset, event in enumerate(CHAT[:4])]  # queued, answered, hold, transferred
    facts, _ = intake.take(0, records)
    transfer = [located for located in facts if located[7] // 1024 == 3]
    assert [(kind, position % 1024) for _, _, kind, *_, position in transfer] == [
        ("hold_ended", 0), ("talk_transferred", 1), ("entered", 2), (REP, 3), (REP, 4)]
    assert [(queue, channel, who, value) for queue, channel, kind, _, who, value, *_ in transfer
            if kind == REP] == [("sales", "chat", "a7", reps.rep_code(reps.HOLD, 20_000)),
                                ("sales", "chat", "a7", reps.rep_code(reps.TRANSFERRED, 70_000))]


def test_the_view_per_token_never_shows_another_queues_agent_or_name():
    view = whole_centre().view(420)
    assert visible(view, Supervisor("alice", frozenset({"billing"}))) == [
        {**A7_15M, "queues": ["billing"]}]  # a7's totals, sales not named
    assert visible(view, Supervisor("bob", frozenset({"sales"}))) == [
        {**A7_15M, "queues": ["sales"]}, B2_15M]
    assert visible(view, Supervisor("carol", frozenset({"*"}))) == view
    assert visible(view, Supervisor("dave", frozenset({"vip"}))) == []


def test_an_agent_listing_no_queue_is_not_in_the_view():
    """b2 leaves sales (an event listing no queue): its figures stay, but no supervisor's
    queue lists it any more."""
    centre = whole_centre()
    centre.feed("cc.agents:0", [agent("b2", 410, "offline")])
    assert centre.view(420) == [A7_15M]


def test_a_window_the_workers_do_not_have_gives_none():
    assert whole_centre().view(420, "1h") is None
    assert merge([], "1h") == []  # no worker has written yet: nothing to say


def test_partials_hold_sums_and_the_latest_state_of_each_partition():
    centre = whole_centre()
    billing = partial(centre.boards["billing"], ms(420), at=7)
    assert billing["at"] == 7 and billing["windows"] == ["5m", "15m"]
    # a7 on billing's partition: c1 and c3 (segments 140 and 90 s, holds 30 and 40, csat 3).
    assert billing["agents"] == {"a7": {
        "queues": ["billing"], "state": "available", "since": ms(150), "changed": ms(300),
        "sums": {"5m": [2, 0, 230_000, 1, 40_000, 1, 0],
                 "15m": [2, 0, 230_000, 2, 70_000, 1, 0]}}}
    assert partial(centre.boards["sales"], ms(420), at=7)["agents"]["b2"]["sums"] == {
        "5m": [1, 0, 90_000, 0, 0, 1, 1], "15m": [1, 0, 90_000, 0, 0, 1, 1]}


def test_samples_out_of_every_window_are_forgotten_with_their_units():
    centre = whole_centre()
    board = centre.boards["billing"]
    board.take_dirty()
    # 15m after the survey at 400, at the next minute: every sample of a7 there is out.
    centre.view(400 + 900 + 60)
    assert board.reps.samples == {}
    assert board.take_dirty()[Board.rep_unit("a7")] is None  # the unit's tombstone
    assert Board.rep_unit("a7") not in board.marks
    [a7, _] = centre.view(400 + 900 + 60)
    assert (a7["handled"], a7["handle_seconds_avg"], a7["csat_ratio"]) == (0, None, None)


def test_a_restart_loses_and_double_counts_nothing():
    """Both stages logged, rebuilt from their logs, the facts of the logged events delivered
    again (at least once), then the rest of the events: the view of the whole centre."""
    centre = Centre()
    cut = {source: len(events) // 2 for source, (_, events) in SOURCES.items()}
    for source, (_, events) in SOURCES.items():
        centre.feed(source, events[:cut[source]])
    ledger = orjson.loads(orjson.dumps(centre.intake.take_changes(0)))
    logged = {queue: orjson.loads(orjson.dumps(board.take_dirty()))
              for queue, board in centre.boards.items()}

    restarted = Centre()
    for key, state in ledger.items():
        restarted.intake.restore(0, key, state)
    for queue, units in logged.items():
        for unit, state in units.items():
            restarted.boards[queue].restore(unit, state)
    restarted.offsets = centre.offsets
    restarted.apply(centre.facts)  # delivered again: already applied, nothing changes
    for source, (_, events) in SOURCES.items():
        restarted.feed(source, events[cut[source]:])
    assert restarted.view(420) == [A7_15M, B2_15M]


def test_a_contact_logged_before_agents_were_credited_credits_nobody():
    """The ledger's older, shorter form of a contact: no agent, so its end credits nobody."""
    talking = Contact("voice", "talking", "billing", ms(10), ms(10), answered_queue="billing",
                      waited_queue="billing", agent="a7")
    assert Contact.from_json(orjson.loads(orjson.dumps(talking.to_json()))) == talking
    older = Contact.from_json(talking.to_json()[:9])  # before cases and agents
    assert older.agent is None and older.customer is None
    intake = Intake(CONFIG)
    intake.restore(0, "voice\x1fc1", talking.to_json()[:9])
    facts, _ = intake.take(0, [Record("cc.voice:0", 0, "voice", orjson.dumps(
        ev("contact.ended", 100, contact_id="c1")))])
    assert [located[2] for located in facts] == ["ended"]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**9), st.integers(0, 3_600_000)),
                max_size=30),
       st.integers(0, 3_600_000))
def test_sums_are_never_negative_and_handled_covers_transferred(samples, now):
    kept = reps.Reps()
    for kind, value, ts in samples:
        kept.add("a", ts, reps.rep_code(kind, min(value, 5) if kind == reps.CSAT else value))
    for sums in kept.sums("a", [now - 300_000, now - 900_000], now):
        assert min(sums) >= 0
        handled, transferred, _, _, _, surveys, satisfied = sums
        assert handled >= transferred and surveys >= satisfied
