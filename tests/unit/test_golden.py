"""An independent oracle: one small centre's morning, and every series of metrics.md v1 for
it, worked out by hand from the contract's definitions (the arithmetic is in the comments),
never from the engine's code. The whole output is compared, so a series that should be
absent ("no data") and is present fails as surely as a wrong value.

The clock: T0 = 2026-11-22T09:00:00Z, every time below is seconds after T0, and the metrics
are read at now = 600 (the latest event, as with clock = event). Windows 5m = (300, 600],
15m and 1h = everything here. Thresholds: service level T = 20 s, short abandon 5 s.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ccmon.stream.engine import Pipeline, Record
from ccmon.stream.kpis import CASE_METRICS, queue_metrics

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
NOW = 600


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def contact(channel: str, contact_id: str, steps: list[tuple]) -> list[tuple[str, dict]]:
    """(type, t, extra fields) steps of one contact -> (channel, event) lines."""
    out = []
    for n, (kind, t, *extra) in enumerate(steps):
        event = {"event_id": f"{channel}-{contact_id}-{n}", "type": f"contact.{kind}",
                 "ts": at(t), "contact_id": contact_id, **(extra[0] if extra else {})}
        out.append((channel, event))
    return out


def survey(contact_id: str, t: float, kind: str, score: int, **fields) -> tuple[str, dict]:
    return ("voice", {"event_id": f"s-{contact_id}-{kind}-{t}", "type": "survey.submitted",
                      "ts": at(t), "contact_id": contact_id, "kind": kind, "score": score,
                      **fields})


def agent(agent_id: str, t: float, state: str, queues: list[str], n: int) -> tuple[None, dict]:
    return (None, {"event_id": f"a-{agent_id}-{n}", "type": "agent.state", "ts": at(t),
                   "agent_id": agent_id, "state": state, "queues": queues})


BILLING = {"queue": "billing"}
LINES: list[tuple[str | None, dict]] = [
    # c1: waits 15 s (in SL), a 30 s hold, ended at 200 with 20 s of wrap.
    *contact("voice", "c1", [("queued", 0, BILLING), ("answered", 15), ("hold_started", 60),
                             ("hold_ended", 90), ("ended", 200, {"wrap_seconds": 20})]),
    # c2: waits 30 s, talks 60 s, transferred to sales; waits 30 s there, talks until 400.
    *contact("voice", "c2", [("queued", 10, BILLING), ("answered", 40),
                             ("transferred", 100, {"to_queue": "sales"}), ("answered", 130),
                             ("ended", 400)]),
    *contact("voice", "c3", [("queued", 20, BILLING), ("abandoned", 23)]),  # short: 3 s
    *contact("voice", "c4", [("queued", 30, BILLING), ("abandoned", 90)]),  # 60 s
    *contact("voice", "c5", [("queued", 50, BILLING)]),  # still waiting at now
    # c6: waits 15 s, on hold since 300, still in conversation at now.
    *contact("voice", "c6", [("queued", 55, BILLING), ("answered", 70), ("hold_started", 300)]),
    # c7: queued at 100 = 10:01:40+01:00 (an offset other than Z), moved to sales at 110.
    ("voice", {"event_id": "voice-c7-0", "type": "contact.queued",
               "ts": "2026-11-22T10:01:40+01:00", "contact_id": "c7", "queue": "billing"}),
    *contact("voice", "c7", [("transferred", 110, {"to_queue": "sales", "event_id": "c7-t"})]),
    # c8 to c10 fall in the 5m window; c8's times are epoch seconds (numbers).
    ("voice", {"event_id": "c8-q", "type": "contact.queued", "ts": T0.timestamp() + 320,
               "contact_id": "c8", "queue": "billing"}),
    ("voice", {"event_id": "c8-a", "type": "contact.answered", "ts": T0.timestamp() + 335,
               "contact_id": "c8", "agent_id": "a1"}),
    ("voice", {"event_id": "c8-e", "type": "contact.ended", "ts": T0.timestamp() + 500,
               "contact_id": "c8", "resolved": True}),
    *contact("voice", "c9", [("queued", 400, BILLING), ("abandoned", 404)]),  # short: 4 s
    *contact("voice", "c10", [("queued", 420, BILLING), ("answered", 445),
                              ("ended", 600, {"wrap_seconds": 5})]),  # ends exactly at now
    # c11 abandons at exactly 300 = now - 5m: out of the 5m window, in 15m.
    *contact("voice", "c11", [("queued", 299, BILLING), ("abandoned", 300)]),
    # The same contact id on chat is another contact: waiting in billing/chat since 200.
    *contact("chat", "c1", [("queued", 200, BILLING)]),
    # Surveys count at their own ts, in the survey's queue, else where the contact was last
    # answered, else where it last waited.
    survey("c1", 550, "csat", 5),  # billing: answered there; c1's events are out of 5m
    survey("c3", 560, "nps", 10),  # billing: never answered, waited there
    survey("c8", 570, "nps", 2),
    survey("c2", 580, "csat", 2),  # sales: last answered there
    survey("c10", 600, "ces", 4),  # at its contact's end: not older than its last event
    survey("c4", 250, "nps", 9),  # billing, out of 5m
    survey("c9", 595, "nps", 10),
    survey("x1", 590, "csat", 3, queue="billing"),  # an unknown contact naming its queue
    # Agents: a1 leaves sales at 20; a3 comes online in sales at 500.
    agent("a1", 0, "available", ["billing", "sales"], 0),
    agent("a1", 20, "busy", ["billing"], 1),
    agent("a2", 5, "away", ["billing"], 0),
    agent("a3", 10, "offline", ["sales"], 0),
    agent("a3", 500, "available", ["sales"], 1),
]
DUPLICATES = [LINES[1], LINES[-1]]  # c1's answer and a3's last state again

V, C, B, S = "voice", "chat", "billing", "sales"
STATES = ("available", "busy", "acw", "away", "offline")

EXPECTED: dict[tuple[str, tuple[str, ...]], float] = {
    # -- billing, voice: state at now ------------------------------------------------------
    ("ccmon_queue_waiting_contacts", (B, V)): 1,  # c5
    ("ccmon_queue_oldest_wait_seconds", (B, V)): 550,  # 600 - 50
    ("ccmon_contacts_in_conversation", (B, V)): 1,  # c6
    ("ccmon_contacts_on_hold", (B, V)): 1,
    # -- billing, voice, 15m and 1h (everything) -------------------------------------------
    **{(name, (B, V, w)): value for w in ("15m", "1h") for name, value in {
        "ccmon_offered_contacts": 11,  # c1..c11
        "ccmon_answered_contacts": 5,  # c1 15 s, c2 30, c6 15, c8 15, c10 25
        "ccmon_abandoned_contacts": 4,  # c3 3 s, c4 60, c9 4, c11 1
        "ccmon_short_abandoned_contacts": 3,  # c3, c9, c11 (< 5 s)
        "ccmon_transferred_contacts": 2,  # c2 in conversation, c7 waiting
        "ccmon_abandon_ratio": 1 / 6,  # (4 - 3) / (5 + 4 - 3)
        "ccmon_service_level_ratio": 3 / 6,  # c1, c6, c8 within 20 s / 6
        "ccmon_answer_wait_seconds_avg": 20.0,  # (15 + 30 + 15 + 15 + 25) / 5
        "ccmon_abandon_wait_seconds_avg": 17.0,  # (3 + 60 + 4 + 1) / 4
        "ccmon_hold_seconds_avg": 30.0,  # c1's hold; c6's is open
        # c1 185 + 20 wrap, c2 60 (to the transfer), c8 165, c10 155 + 5 wrap
        "ccmon_handle_seconds_avg": (205 + 60 + 165 + 160) / 4,
        "ccmon_csat_ratio": 0.5,  # 5 and 3: one of two >= 4
        # 10 (c3), 2 (c8), 9 (c4), 10 (c9): 3 promoters, 1 detractor of 4
        "ccmon_nps_score": 100 * (3 / 4 - 1 / 4),
        "ccmon_ces_avg": 4.0,
    }.items()},
    # -- billing, voice, 5m = (300, 600] ---------------------------------------------------
    ("ccmon_offered_contacts", (B, V, "5m")): 3,  # c8, c9, c10
    ("ccmon_answered_contacts", (B, V, "5m")): 2,  # c8 15 s, c10 25 s
    ("ccmon_abandoned_contacts", (B, V, "5m")): 1,  # c9 (c11's at 300 is out)
    ("ccmon_short_abandoned_contacts", (B, V, "5m")): 1,
    ("ccmon_transferred_contacts", (B, V, "5m")): 0,
    ("ccmon_abandon_ratio", (B, V, "5m")): 0.0,  # (1 - 1) / (2 + 1 - 1)
    ("ccmon_service_level_ratio", (B, V, "5m")): 0.5,  # c8 / 2
    ("ccmon_answer_wait_seconds_avg", (B, V, "5m")): 20.0,  # (15 + 25) / 2
    ("ccmon_abandon_wait_seconds_avg", (B, V, "5m")): 4.0,
    # no hold closed in the window: no ccmon_hold_seconds_avg
    ("ccmon_handle_seconds_avg", (B, V, "5m")): 162.5,  # (165 + 160) / 2
    ("ccmon_csat_ratio", (B, V, "5m")): 0.5,  # 5 (at 550) and 3 (590)
    ("ccmon_nps_score", (B, V, "5m")): 100 * (2 / 3 - 1 / 3),  # 10, 2, 10
    ("ccmon_ces_avg", (B, V, "5m")): 4.0,
    # -- sales, voice: c2 (transferred in at 100, answered 130 after 30 s, ended 400) and
    # c7 (waiting since 110) ---------------------------------------------------------------
    ("ccmon_queue_waiting_contacts", (S, V)): 1,
    ("ccmon_queue_oldest_wait_seconds", (S, V)): 490,
    ("ccmon_contacts_in_conversation", (S, V)): 0,
    ("ccmon_contacts_on_hold", (S, V)): 0,
    **{(name, (S, V, w)): value for w in ("15m", "1h") for name, value in {
        "ccmon_offered_contacts": 2, "ccmon_answered_contacts": 1,
        "ccmon_abandoned_contacts": 0, "ccmon_short_abandoned_contacts": 0,
        "ccmon_transferred_contacts": 0,
        "ccmon_abandon_ratio": 0.0,  # 0 / (1 + 0 - 0)
        "ccmon_service_level_ratio": 0.0,  # 30 s > 20 s
        "ccmon_answer_wait_seconds_avg": 30.0,
        "ccmon_handle_seconds_avg": 270.0,  # 400 - 130
        "ccmon_csat_ratio": 0.0,  # one score, 2
    }.items()},
    **{(name, (S, V, "5m")): 0 for name in (
        "ccmon_offered_contacts", "ccmon_answered_contacts", "ccmon_abandoned_contacts",
        "ccmon_short_abandoned_contacts", "ccmon_transferred_contacts")},
    ("ccmon_handle_seconds_avg", (S, V, "5m")): 270.0,  # closed at 400, inside (300, 600]
    ("ccmon_csat_ratio", (S, V, "5m")): 0.0,
    # -- billing, chat: one contact waiting since 200 --------------------------------------
    ("ccmon_queue_waiting_contacts", (B, C)): 1,
    ("ccmon_queue_oldest_wait_seconds", (B, C)): 400,
    ("ccmon_contacts_in_conversation", (B, C)): 0,
    ("ccmon_contacts_on_hold", (B, C)): 0,
    **{(name, (B, C, w)): (1 if name == "ccmon_offered_contacts" and w != "5m" else 0)
       for w in ("5m", "15m", "1h") for name in (
           "ccmon_offered_contacts", "ccmon_answered_contacts", "ccmon_abandoned_contacts",
           "ccmon_short_abandoned_contacts", "ccmon_transferred_contacts")},
    # -- agents: a1 busy in billing only, a2 away in billing, a3 available in sales ---------
    **{("ccmon_agents", (B, state)): {"busy": 1, "away": 1}.get(state, 0) for state in STATES},
    **{("ccmon_agents", (S, state)): {"available": 1}.get(state, 0) for state in STATES},
}


def quantiles(name: str, labels: tuple[str, ...], p50: float, p90: float, p95: float) -> dict:
    return {(name, (*labels, q)): value for q, value in zip(("0.5", "0.9", "0.95"),
                                                            (p50, p90, p95), strict=True)}


# Version 1.1: service-level components (T = 20 s, within is wait <= T, abandons too) and
# nearest-rank quantiles: the smallest x with at least ceil(q * n) samples <= x, i.e. the
# ceil(q * n)-th of the sorted samples.
EXPECTED |= {
    **{(name, (B, V, w)): value for w in ("15m", "1h") for name, value in {
        "ccmon_answered_within_threshold_contacts": 3,  # c1 15, c6 15, c8 15 (30, 25 not)
        "ccmon_abandoned_within_threshold_contacts": 3,  # c3 3, c9 4, c11 1 (c4's 60 not)
    }.items()},
    **{key: value for w in ("15m", "1h") for key, value in {
        # waits [15, 15, 15, 25, 30]: ranks ceil(2.5) = 3, ceil(4.5) = 5, ceil(4.75) = 5
        **quantiles("ccmon_answer_wait_seconds", (B, V, w), 15, 30, 30),
        # [1, 3, 4, 60]: ranks 2, ceil(3.6) = 4, ceil(3.8) = 4
        **quantiles("ccmon_abandon_wait_seconds", (B, V, w), 3, 60, 60),
        # [60, 160, 165, 205]: ranks 2, 4, 4
        **quantiles("ccmon_handle_seconds", (B, V, w), 160, 205, 205),
    }.items()},
    ("ccmon_answered_within_threshold_contacts", (B, V, "5m")): 1,  # c8 (c10 waited 25)
    ("ccmon_abandoned_within_threshold_contacts", (B, V, "5m")): 1,  # c9
    **quantiles("ccmon_answer_wait_seconds", (B, V, "5m"), 15, 25, 25),  # [15, 25]: 1, 2, 2
    **quantiles("ccmon_abandon_wait_seconds", (B, V, "5m"), 4, 4, 4),
    **quantiles("ccmon_handle_seconds", (B, V, "5m"), 160, 165, 165),  # [160, 165]
    # sales: c2 answered after 30 s (> T), its segment 270 s closed at 400; no abandon.
    **{(name, (S, V, w)): 0 for w in ("5m", "15m", "1h") for name in (
        "ccmon_answered_within_threshold_contacts", "ccmon_abandoned_within_threshold_contacts")},
    **quantiles("ccmon_answer_wait_seconds", (S, V, "15m"), 30, 30, 30),
    **quantiles("ccmon_answer_wait_seconds", (S, V, "1h"), 30, 30, 30),
    **{key: value for w in ("5m", "15m", "1h")
       for key, value in quantiles("ccmon_handle_seconds", (S, V, w), 270, 270, 270).items()},
    **{(name, (B, C, w)): 0 for w in ("5m", "15m", "1h") for name in (
        "ccmon_answered_within_threshold_contacts", "ccmon_abandoned_within_threshold_contacts")},
}


def textbook_wait_probability(agents: int, load: float) -> float:
    """Erlang C as the textbooks write it (powers and factorials): an oracle independent of
    the engine's recursion, fine for the few agents here."""
    top = load**agents / math.factorial(agents) * agents / (agents - load)
    return top / (sum(load**k / math.factorial(k) for k in range(agents)) + top)


def forecast(agents: int, load: float, handle: float, threshold: float = 20) -> float:
    if agents <= load:
        return 0.0
    return 1 - textbook_wait_probability(agents, load) * math.exp(
        -(agents - load) * threshold / handle)


def required(load: float, handle: float) -> int:
    return next(n for n in range(1, 100) if forecast(n, load, handle) >= 0.8)


# Version 1.1, Erlang C (T = 20 s, S = 0.8): A = offered / W x h. N is the queue's agents
# available, busy or in acw now: billing a1 (busy; a2 is away), sales a3 (available).
# billing/voice: h = 590 / 4 = 147.5 s in 15m and 1h, 162.5 s in 5m.
# 15m: A = 11 x 147.5 / 900 = 1.8027..; 5m: A = 3 x 162.5 / 300 = 1.625: N = 1 <= A, so the
# forecast is 0 and the wait absent. 1h: A = 1622.5 / 3600 = 0.4506..; with one agent C = A.
A_15M, A_5M, A_1H = 11 * 147.5 / 900, 3 * 162.5 / 300, 11 * 147.5 / 3600
# sales/voice: h = 270 s (c2); 15m: A = 2 x 270 / 900 = 0.6, 1h: 540 / 3600 = 0.15; 5m
# offered nothing (c2's entry at 100 is out): no figure there.
EXPECTED |= {
    ("ccmon_offered_load_erlangs", (B, V, "15m")): A_15M,
    ("ccmon_forecast_service_level_ratio", (B, V, "15m")): 0.0,
    ("ccmon_agents_required", (B, V, "15m")): required(A_15M, 147.5),
    ("ccmon_offered_load_erlangs", (B, V, "5m")): A_5M,
    ("ccmon_forecast_service_level_ratio", (B, V, "5m")): 0.0,
    ("ccmon_agents_required", (B, V, "5m")): required(A_5M, 162.5),
    ("ccmon_offered_load_erlangs", (B, V, "1h")): A_1H,
    ("ccmon_forecast_service_level_ratio", (B, V, "1h")):
        1 - A_1H * math.exp(-(1 - A_1H) * 20 / 147.5),
    ("ccmon_estimated_wait_seconds", (B, V, "1h")): A_1H * 147.5 / (1 - A_1H),
    ("ccmon_agents_required", (B, V, "1h")): required(A_1H, 147.5),
    ("ccmon_offered_load_erlangs", (S, V, "15m")): 0.6,
    ("ccmon_forecast_service_level_ratio", (S, V, "15m")): 1 - 0.6 * math.exp(-0.4 * 20 / 270),
    ("ccmon_estimated_wait_seconds", (S, V, "15m")): 0.6 * 270 / 0.4,  # 405 s
    ("ccmon_agents_required", (S, V, "15m")): required(0.6, 270),
    ("ccmon_offered_load_erlangs", (S, V, "1h")): 0.15,
    ("ccmon_forecast_service_level_ratio", (S, V, "1h")): 1 - 0.15 * math.exp(-0.85 * 20 / 270),
    ("ccmon_estimated_wait_seconds", (S, V, "1h")): 0.15 * 270 / 0.85,
    ("ccmon_agents_required", (S, V, "1h")): required(0.15, 270),
}


def agent_seconds(queue: str, window: str, **seconds: float) -> dict:
    return {("ccmon_agent_state_seconds", (queue, window, state)): seconds.get(state, 0)
            for state in STATES}


# Version 1.1, agents' time: a1 available in billing and sales from 0, busy in billing only
# from 20 (it leaves sales then); a2 away in billing from 5; a3 offline in sales from 10,
# available from 500. The current state counts up to now = 600.
EXPECTED |= {
    **{key: value for w in ("15m", "1h") for key, value in {
        # billing: a1 available 0-20 (20 s), busy 20-600 (580 s); a2 away 5-600 (595 s)
        **agent_seconds(B, w, available=20, busy=580, away=595),
        ("ccmon_occupancy_ratio", (B, w)): 580 / 600,  # (busy + acw) / (avail + busy + acw)
        # sales: a1 available 0-20; a3 offline 10-500 (490 s), available 500-600 (100 s)
        **agent_seconds(S, w, available=120, offline=490),
        ("ccmon_occupancy_ratio", (S, w)): 0.0,
    }.items()},
    # 5m = (300, 600]: a1 busy and a2 away the whole 300 s; a3 offline 300-500, available after
    **agent_seconds(B, "5m", busy=300, away=300),
    ("ccmon_occupancy_ratio", (B, "5m")): 1.0,
    **agent_seconds(S, "5m", available=100, offline=200),
    ("ccmon_occupancy_ratio", (S, "5m")): 0.0,
}


def test_the_erlang_figures_need_a_staffed_queue_to_forecast():
    """The oracle's own arithmetic: at A = 1.8027.. (h = 147.5 s, T = 20 s) two agents
    forecast 1 - C(2, A) e^(-(2 - A) 20 / 147.5) = 1 - 0.8546 x 0.9736 = 0.168, three 0.697,
    four 0.904: four are required. With one agent C = A (M/M/1)."""
    assert [round(forecast(n, A_15M, 147.5), 2) for n in range(1, 5)] == [0.0, 0.17, 0.7, 0.9]
    assert required(A_15M, 147.5) == 4
    assert textbook_wait_probability(1, 0.6) == pytest.approx(0.6)


def feed(lines: list[tuple[str | None, dict]]) -> Pipeline:
    pipeline = Pipeline()
    sources = {"voice": "cc.voice:0", "chat": "cc.chat:0", None: "cc.agents:0"}
    records = [Record(sources[channel], offset, channel, orjson.dumps(event))
               for offset, (channel, event) in enumerate(lines)]
    pipeline.feed(records)
    return pipeline


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    lines = [*LINES, *DUPLICATES]
    lines.insert(5, ("voice", {"event_id": "bad", "type": "contact.queued", "ts": at(5)}))
    return feed(lines)


def test_every_series_is_the_hand_worked_value(pipeline: Pipeline):
    now_ms = round((T0.timestamp() + NOW) * 1000)
    # The cases (1.1) have their own golden story: tests/test_cases_metrics.py.
    actual = {(name, tuple(labels)): value
              for name, labels, value in queue_metrics(pipeline.board, now_ms)
              if name not in CASE_METRICS}
    assert actual.keys() - EXPECTED.keys() == set(), "series that should be absent"
    assert EXPECTED.keys() - actual.keys() == set(), "series missing"
    wrong = {key: (actual[key], value) for key, value in EXPECTED.items()
             if actual[key] != pytest.approx(value, rel=1e-12)}
    assert wrong == {}


def test_health_counters_and_clock(pipeline: Pipeline):
    intake = pipeline.intake
    assert intake.duplicates == 2
    assert dict(intake.invalid) == {"missing_field": 1}
    assert intake.events[("voice", "contact.queued")] == 11
    assert intake.events[("chat", "contact.queued")] == 1
    assert intake.events[("voice", "survey.submitted")] == 8
    assert intake.events[("", "agent.state")] == 5
    assert sum(intake.events.values()) == len(LINES)
    assert intake.latest_ts == round((T0.timestamp() + NOW) * 1000)
    assert intake.last_event_ts == {"voice": intake.latest_ts,
                                    "chat": round((T0.timestamp() + 200) * 1000)}


def test_waits_so_far_are_read_to_the_millisecond(pipeline: Pipeline):
    """Between events the gauges move with `now`: 250 ms later c5 has waited 550.25 s."""
    later = round((T0.timestamp() + NOW + 0.25) * 1000)
    gauges = {(name, tuple(labels)): value for name, labels, value
              in queue_metrics(pipeline.board, later) if name.endswith("oldest_wait_seconds")}
    assert gauges == {("ccmon_queue_oldest_wait_seconds", (B, V)): 550.25,
                      ("ccmon_queue_oldest_wait_seconds", (S, V)): 490.25,
                      ("ccmon_queue_oldest_wait_seconds", (B, C)): 400.25}


def test_asking_for_some_metrics_gives_them_for_every_queue(pipeline: Pipeline):
    now_ms = round((T0.timestamp() + NOW) * 1000)
    waiting = sorted(queue_metrics(pipeline.board, now_ms, {"ccmon_queue_waiting_contacts"}))
    assert waiting == sorted(("ccmon_queue_waiting_contacts", labels, 1)
                             for labels in ((B, V), (S, V), (B, C)))
