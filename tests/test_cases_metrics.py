"""Cases wired into the engine (metrics.md 1.1, "Cases"): stage one keeps the customer and
hands journey steps over. Golden: every expected value is worked out by hand from the
contract, the arithmetic in the comments, never from the code."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from ccmon.stream.cases import ABANDON, END, ENTRY, JourneyFact
from ccmon.stream.engine import FACTS_PER_EVENT, EngineConfig, Intake, Record
from ccmon.stream.events import decode
from ccmon.stream.lifecycle import Contact, Ledger, contact_key

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC).timestamp()
SOURCE = "cc.voice:0"


def at(seconds: float) -> str:
    moment = datetime.fromtimestamp(T0 + seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(seconds: float) -> int:
    return round((T0 + seconds) * 1000)


def ev(event_id: str, event_type: str, t: float, contact: str, **fields) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": event_type, "ts": at(t),
                         "contact_id": contact, **fields})


def test_stage_one_keeps_the_customer_and_an_old_state_loads_without_one():
    event = decode(ev("e1", "contact.queued", 0, "c1", queue="q", customer_id="k"), "voice")
    assert event.customer_id == "k"
    ledger = Ledger()
    ledger.apply(event)
    key = contact_key("voice", "c1")
    state = ledger.take_dirty()[key]
    assert state[-1] == "k"
    old = state[:-1]  # logged before cases
    restored = Ledger()
    restored.restore(key, old)
    assert restored.contacts[key].customer is None
    assert Contact.from_json(state).customer == "k"


def test_intake_hands_over_the_journey_steps_of_contacts_with_a_customer():
    lines = [ev("e0", "contact.queued", 0, "c1", queue="q", customer_id="k"),
             ev("e1", "contact.queued", 1, "c2", queue="q"),  # no customer: no step
             ev("e2", "contact.answered", 2, "c1"),  # an answer: no step
             ev("e3", "contact.abandoned", 3, "c2"),
             ev("e4", "contact.ended", 4, "c1", resolved=True),
             ev("e4", "contact.ended", 4, "c1", resolved=True)]  # a duplicate: no step
    intake = Intake(EngineConfig())
    journeys: list[JourneyFact] = []
    intake.take(0, [Record(SOURCE, offset, "voice", line) for offset, line in enumerate(lines)],
                journeys)
    key = contact_key("voice", "c1")
    assert journeys == [
        JourneyFact("k", key, ENTRY, ms(0), "q", "voice", False, SOURCE, 0),
        JourneyFact("k", key, END, ms(4), "q", "voice", True, SOURCE, 4 * FACTS_PER_EVENT)]
    assert ABANDON not in {journey.kind for journey in journeys}
