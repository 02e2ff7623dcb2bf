"""The engine's invariants under any valid history (Hypothesis), not only the golden ones:

- a stateful machine plays contacts and agents through random lifecycles and checks after
  every step: counts and gauges never negative, answered + abandoned <= offered over a window
  longer than the history, ratios in [0, 1], NPS in [-100, 100], means within their
  samples' range, on hold <= in conversation;
- a repeated event changes nothing, and the same events fed in any split into batches give
  the same metrics (and agents view) as fed at once.
"""

from __future__ import annotations

import itertools
import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ccmon.alerts.agents_view import partial
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.simulate import Simulation

START = 1_763_802_000.0
QUEUES = ("billing", "sales")
LONG = EngineConfig(windows=(("1m", 60_000), ("1d", 86_400_000)))  # 1d covers every history

RATIOS = ("ccmon_abandon_ratio", "ccmon_service_level_ratio", "ccmon_csat_ratio")
MEANS = ("ccmon_answer_wait_seconds_avg", "ccmon_abandon_wait_seconds_avg",
         "ccmon_hold_seconds_avg", "ccmon_handle_seconds_avg")


def check(pipeline: Pipeline, now_ms: int, longest_wait_s: float) -> None:
    values = {(name, tuple(labels)): value
              for name, labels, value in queue_metrics(pipeline.board, now_ms)}
    for (name, labels), value in values.items():
        assert not math.isnan(value), name
        if name in RATIOS:
            assert 0 <= value <= 1, (name, labels, value)
        elif name == "ccmon_nps_score":
            assert -100 <= value <= 100
        elif name == "ccmon_ces_avg":
            assert 1 <= value <= 7
        elif name in ("ccmon_answer_wait_seconds_avg", "ccmon_abandon_wait_seconds_avg",
                      "ccmon_queue_oldest_wait_seconds"):
            assert 0 <= value <= longest_wait_s + 0.001, (name, value)  # ms rounding
        else:
            assert value >= 0, (name, labels, value)
    for (name, labels), value in values.items():
        if name == "ccmon_contacts_on_hold":
            assert value <= values[("ccmon_contacts_in_conversation", labels)]
        if name == "ccmon_offered_contacts" and labels[2] == "1d":
            left = sum(values[(n, labels)] for n in (
                "ccmon_answered_contacts", "ccmon_abandoned_contacts"))
            assert left <= value, labels
            assert values[("ccmon_short_abandoned_contacts", labels)] <= \
                values[("ccmon_abandoned_contacts", labels)]
    for figures in partial(pipeline.board, now_ms, 0)["agents"].values():
        for handled, transferred, *rest in figures.get("sums", {}).values():
            assert min(handled, transferred, *rest) >= 0 and handled >= transferred


class Centre(RuleBasedStateMachine):
    """Contacts and agents through any lifecycle the contract allows, time moving on."""

    def __init__(self) -> None:
        super().__init__()
        self.pipeline = Pipeline(LONG)
        self.offset = 0
        self.t = 0.0  # seconds after START
        self.contacts: dict[str, str] = {}  # id -> waiting | talking | holding | ended
        self.entered: dict[str, float] = {}  # when a waiting contact entered its queue
        self.longest_wait = 0.0
        self.n = 0

    def send(self, event: dict, channel: str | None = "voice") -> None:
        self.n += 1
        event = {"event_id": f"e{self.n}", "ts": START + self.t, **event}
        source = "cc.voice:0" if channel else "cc.agents:0"
        self.pipeline.feed([Record(source, self.offset, channel, orjson.dumps(event))])
        self.offset += 1
        assert self.pipeline.dead == [], self.pipeline.dead[-1].detail

    def pick(self, data: st.DataObject, *states: str) -> str:
        return data.draw(st.sampled_from(sorted(c for c, s in self.contacts.items()
                                                if s in states)))

    def has(self, *states: str) -> bool:
        return any(s in states for s in self.contacts.values())

    @rule(ms=st.integers(0, 120_000))
    def time_passes(self, ms: int) -> None:
        self.t = round(self.t + ms / 1000, 3)  # the engine's resolution

    @rule(queue=st.sampled_from(QUEUES))
    def queued(self, queue: str) -> None:
        contact = f"c{len(self.contacts)}"
        self.contacts[contact], self.entered[contact] = "waiting", self.t
        self.send({"type": "contact.queued", "contact_id": contact, "queue": queue})

    def _leaves_queue(self, contact: str) -> None:
        self.longest_wait = max(self.longest_wait, self.t - self.entered.pop(contact))

    @precondition(lambda self: self.has("waiting"))
    @rule(data=st.data(), agent=st.sampled_from(("a1", "a2", None)))
    def answered(self, data: st.DataObject, agent: str | None) -> None:
        contact = self.pick(data, "waiting")
        self._leaves_queue(contact)
        self.contacts[contact] = "talking"
        self.send({"type": "contact.answered", "contact_id": contact,
                   **({"agent_id": agent} if agent else {})})

    @precondition(lambda self: self.has("waiting"))
    @rule(data=st.data())
    def abandoned(self, data: st.DataObject) -> None:
        contact = self.pick(data, "waiting")
        self._leaves_queue(contact)
        self.contacts[contact] = "ended"
        self.send({"type": "contact.abandoned", "contact_id": contact})

    @precondition(lambda self: self.has("waiting", "talking", "holding"))
    @rule(data=st.data(), queue=st.sampled_from(QUEUES))
    def transferred(self, data: st.DataObject, queue: str) -> None:
        contact = self.pick(data, "waiting", "talking", "holding")
        if self.contacts[contact] == "waiting":
            self._leaves_queue(contact)
        self.contacts[contact], self.entered[contact] = "waiting", self.t
        self.send({"type": "contact.transferred", "contact_id": contact, "to_queue": queue})

    @precondition(lambda self: self.has("talking", "holding"))
    @rule(data=st.data())
    def hold_toggled(self, data: st.DataObject) -> None:
        contact = self.pick(data, "talking", "holding")
        starting = self.contacts[contact] == "talking"
        self.contacts[contact] = "holding" if starting else "talking"
        kind = "contact.hold_started" if starting else "contact.hold_ended"
        self.send({"type": kind, "contact_id": contact})

    @precondition(lambda self: self.has("talking", "holding"))
    @rule(data=st.data(), wrap=st.floats(0, 600))
    def ended(self, data: st.DataObject, wrap: float) -> None:
        contact = self.pick(data, "talking", "holding")
        self.contacts[contact] = "ended"
        self.send({"type": "contact.ended", "contact_id": contact, "wrap_seconds": wrap,
                   "resolved": True})

    @precondition(lambda self: bool(self.contacts))
    @rule(data=st.data(), kind=st.sampled_from(("csat", "nps", "ces")))
    def surveyed(self, data: st.DataObject, kind: str) -> None:
        contact = data.draw(st.sampled_from(sorted(self.contacts)))
        low, high = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}[kind]
        self.send({"type": "survey.submitted", "contact_id": contact, "kind": kind,
                   "score": data.draw(st.integers(low, high))})

    @rule(agent=st.sampled_from(("a1", "a2")),
          state=st.sampled_from(("available", "busy", "acw", "away", "offline")),
          queues=st.lists(st.sampled_from(QUEUES), unique=True))
    def agent_state(self, agent: str, state: str, queues: list[str]) -> None:
        self.send({"type": "agent.state", "agent_id": agent, "state": state,
                   "queues": queues}, channel=None)

    @invariant()
    def figures_are_consistent(self) -> None:
        now = round((START + self.t) * 1000)
        waiting = max([self.t - since for since in self.entered.values()], default=0.0)
        check(self.pipeline, now, max(self.longest_wait, waiting))


Centre.TestCase.settings = settings(stateful_step_count=40)
TestCentre = Centre.TestCase

SIMULATED = [orjson.dumps(e) for e in Simulation(11, START).run(1800)]


def metrics_of(pipeline: Pipeline) -> tuple[list[tuple], dict]:
    now = pipeline.intake.latest_ts
    return sorted(queue_metrics(pipeline.board, now)), partial(pipeline.board, now, 0)


def records(lines: list[bytes], first_offset: int = 0) -> list[Record]:
    out = []
    for offset, line in enumerate(lines, first_offset):
        channel = orjson.loads(line).get("channel")
        out.append(Record(f"cc.{channel or 'agents'}:0", offset, channel, line))
    return out


WHOLE = Pipeline()
WHOLE.feed(records(SIMULATED))


@given(st.lists(st.integers(1, len(SIMULATED) - 1), max_size=8, unique=True))
def test_any_split_into_batches_gives_the_same_metrics(cuts):
    pipeline = Pipeline()
    bounds = [0, *sorted(cuts), len(SIMULATED)]
    for low, high in itertools.pairwise(bounds):
        pipeline.feed(records(SIMULATED[low:high], low))
    assert metrics_of(pipeline) == metrics_of(WHOLE)


@given(st.lists(st.tuples(st.integers(0, len(SIMULATED) - 1), st.integers(0, 50)),
                min_size=1, max_size=10))
def test_a_repeated_event_changes_nothing(repeats):
    """Each repeat arrives some events after its original (at-least-once delivery)."""
    lines = list(SIMULATED)
    for index, later in sorted(repeats, reverse=True):
        lines.insert(min(len(lines), index + 1 + later), SIMULATED[index])
    pipeline = Pipeline()
    pipeline.feed(records(lines))
    assert metrics_of(pipeline) == metrics_of(WHOLE)
    assert pipeline.intake.duplicates == len(repeats)
