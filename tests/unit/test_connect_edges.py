"""stream/connect.py's edges: whose timestamp an event takes, the 10 s a disconnected contact
waits for its transfer, a transfer's leg that ends before reaching a queue, agent states by
status type (whatever the status is named), ARNs and routing-profile queues the mapper cannot
or can use, and a finished contact leaving nothing in the state. Expectations by hand from
adapters.md and docs/adapters.md's mapping table, on messages shaped as AWS documents them
("Amazon Connect contact events", "Agent event streams data model")."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest

from ccmon.stream.connect import Connect

T0 = 1_772_442_000  # 2026-03-02T09:00:00Z
INSTANCE = "arn:aws:connect:eu-west-1:111122223333:instance/6f1c2a3b"
Q1, Q2 = f"{INSTANCE}/queue/q-1", f"{INSTANCE}/queue/q-2"
ANA = f"{INSTANCE}/agent/ana"


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds, UTC).isoformat(timespec="milliseconds")


def contact(kind: str, cid: str, seconds: float, envelope: float | None = None,
            **detail) -> bytes:
    """A contact event whose own timestamp is at `seconds` after T0, the envelope's `time` at
    `envelope` (the same by default)."""
    own = {"QUEUED": ("queueInfo", "enqueueTimestamp"),
           "CONNECTED_TO_AGENT": ("agentInfo", "connectedToAgentTimestamp"),
           "DISCONNECTED": (None, "disconnectTimestamp"),
           "INITIATED": (None, "initiationTimestamp")}[kind]
    body = {"eventType": kind, "contactId": cid, "channel": "VOICE", **detail}
    if own[0] is None:
        body[own[1]] = iso(seconds)
    else:
        body[own[0]] = {**body.get(own[0], {}), own[1]: iso(seconds)}
    return orjson.dumps({"version": "0", "detail-type": "Amazon Connect Contact Event",
                         "source": "aws.connect", "time": iso(
                             seconds if envelope is None else envelope), "detail": body})


def queued(cid: str, seconds: float, queue: str = Q1, **kw) -> bytes:
    return contact("QUEUED", cid, seconds, queueInfo={"queueArn": queue}, **kw)


def answered(cid: str, seconds: float, agent: str = ANA, **kw) -> bytes:
    return contact("CONNECTED_TO_AGENT", cid, seconds, agentInfo={"agentArn": agent}, **kw)


def agent(seconds: float, status: dict | None = None, inbound: list | None = None,
          kind: str = "HEART_BEAT") -> bytes:
    profile = {"InboundQueues": [{"ARN": Q1, "Name": "billing"}] if inbound is None
               else inbound}
    return orjson.dumps({"EventType": kind, "AgentARN": ANA, "EventTimestamp": iso(seconds),
                         "Version": "2019-05-25", "CurrentAgentSnapshot": {
                             "AgentStatus": status or {"Name": "Available", "Type": "ROUTABLE"},
                             "Configuration": {"RoutingProfile": profile}, "Contacts": []}})


def run(messages: list[bytes], mapper: Connect | None = None) -> list[tuple]:
    """(seconds after T0, type, contact id or agent, what) of each event."""
    mapper = mapper or Connect()
    out = []
    for message in messages:
        outcome = mapper.feed(message)
        assert outcome.malformed is None, outcome.malformed
        for e in outcome.events:
            who = e.get("contact_id") or e["agent_id"]
            what = e.get("state") or e.get("queue") or e.get("to_queue") or e.get("agent_id")
            out.append((round(e["ts"] - T0, 3), e["type"], who, what))
    return out


@pytest.mark.parametrize("message, wanted", [
    (queued("c-1", 2, envelope=5), (2, "contact.queued", "c-1", "q-1")),
    (answered("c-1", 8, envelope=9), (8, "contact.answered", "c-1", "ana")),
    (contact("DISCONNECTED", "c-1", 8, envelope=9), (8, "contact.abandoned", "c-1", None)),
])
def test_an_event_takes_its_own_timestamp_not_the_envelopes_time(message, wanted):
    # adapters.md: the event's own timestamp (enqueueTimestamp, connectedToAgentTimestamp,
    # disconnectTimestamp), else the envelope's time.
    first = [contact("INITIATED", "c-1", 0)] + (
        [queued("c-1", 1)] if b"QUEUED" not in message else [])
    assert run([*first, message])[-1] == wanted


def test_without_its_own_timestamp_an_event_takes_the_envelopes_time():
    message = orjson.loads(queued("c-1", 2, envelope=5))
    del message["detail"]["queueInfo"]["enqueueTimestamp"]
    assert run([orjson.dumps(message)]) == [(5, "contact.queued", "c-1", "q-1")]


@pytest.mark.parametrize("after, wanted", [
    # A transfer INITIATED exactly 10 s after the DISCONNECTED is within the 10 s: one
    # contact, transferred to q-2 at its new leg's queue entry (72).
    (10, [(72, "contact.transferred", "c-1", "q-2")]),
    # 10.001 s after: the first message more than 10 s later decides it ended at 60; the new
    # leg is a contact of its own.
    (10.001, [(60, "contact.ended", "c-1", None), (72, "contact.queued", "c-2", "q-2")]),
])
def test_a_disconnected_contact_waits_10_s_for_its_transfer(after, wanted):
    messages = [queued("c-1", 0), answered("c-1", 5), contact("DISCONNECTED", "c-1", 60),
                contact("INITIATED", "c-2", 60 + after, initiationMethod="TRANSFER",
                        previousContactId="c-1"),
                queued("c-2", 72, Q2)]
    assert run(messages)[2:] == wanted


def test_a_transfer_leg_that_disconnects_before_its_queue_ends_the_contact():
    # The contact was answered, then transferred; its new leg disconnects before any QUEUED:
    # in conversation, DISCONNECTED ends the contact, at that time.
    mapper = Connect()
    events = run([queued("c-1", 0), answered("c-1", 5), contact("DISCONNECTED", "c-1", 60),
                  contact("INITIATED", "c-2", 62, initiationMethod="TRANSFER",
                          previousContactId="c-1"),
                  contact("DISCONNECTED", "c-2", 64)], mapper)
    assert events[2:] == [(64, "contact.ended", "c-1", None)]
    assert mapper.contacts == {} and mapper.alias == {}


@pytest.mark.parametrize("status, wanted", [
    # docs/adapters.md: offline for status type OFFLINE, available for ROUTABLE, away for any
    # other: by type, whatever name the centre gave the status.
    ({"Name": "Signed out", "Type": "OFFLINE"}, "offline"),
    ({"Name": "Ready", "Type": "ROUTABLE"}, "available"),
    ({"Name": "Available", "Type": "ROUTABLE"}, "available"),
    ({"Name": "Lunch", "Type": "CUSTOM"}, "away"),
])
def test_an_agents_state_follows_its_status_type(status, wanted):
    assert run([agent(0, status)]) == [(0, "agent.state", "ana", wanted)]


def test_routing_profile_queues_without_an_arn_are_left_out():
    # Queues are the routing profile's inbound queues, labelled by name, else by the id at
    # the end of the ARN: an entry without a string ARN labels nothing, the others count.
    inbound = [{"ARN": Q1, "Name": "billing"}, {"Name": "no arn"}, {"ARN": 42, "Name": "x"},
               {"ARN": Q2}]
    assert run([agent(0, inbound=inbound)]) == [(0, "agent.state", "ana", "available")]
    assert Connect().feed(agent(0, inbound=inbound)).events[0]["queues"] == ["billing", "q-2"]


def test_a_routing_profile_queue_whose_arn_ends_in_no_id_is_dead_lettered():
    # docs/adapters.md: an ARN the mapper cannot use is a bad_field.
    outcome = Connect().feed(agent(0, inbound=[{"ARN": f"{INSTANCE}/queue/"}]))
    assert outcome.malformed[0] == "bad_field" and outcome.events == []


def test_an_arn_that_is_a_bare_id_names_that_id():
    # The agent is the id at the end of its ARN; a bare id is its own end.
    assert run([queued("c-1", 0), answered("c-1", 5, agent="ana")])[-1] == (
        5, "contact.answered", "c-1", "ana")


@pytest.mark.parametrize("restored", [False, True])
def test_a_finished_contact_leaves_nothing_in_the_state(restored):
    # The mapper's state holds open contacts only: a contact ended (here by the first message
    # more than 10 s after its DISCONNECTED, after a transfer) keeps no alias of its Connect
    # ids, also when the state in between went through the position file's JSON.
    mapper = Connect()
    run([queued("c-1", 0), answered("c-1", 5),
         contact("DISCONNECTED", "c-1", 30), contact("INITIATED", "c-2", 32,
                                                     initiationMethod="TRANSFER",
                                                     previousContactId="c-1"),
         queued("c-2", 33, Q2), answered("c-2", 40), contact("DISCONNECTED", "c-2", 60)],
        mapper)
    if restored:
        mapper = Connect(json.loads(json.dumps(mapper.to_json())))
    assert run([agent(71)], mapper)[0] == (60, "contact.ended", "c-1", None)
    assert mapper.contacts == {} and mapper.alias == {}
