"""The supervisors' WebSocket protocol (alerts.md) on the sans-I/O session, alerts/session.py:
inputs in, actions out, no server, no clock. Expected values are alerts.md's and
docs/alerts.md's; the gateway performing the actions on real sockets and Redis is tested in
test_gateway.py and test_agents_gateway.py."""

from __future__ import annotations

import pytest

from ccmon.alerts.session import (
    ACKED,
    ALREADY,
    Close,
    FetchView,
    FindAlert,
    Forward,
    Mirror,
    Send,
    Session,
    SessionError,
    SignedIn,
    State,
    StoreAck,
)
from ccmon.alerts.tokens import Supervisor, parse_tokens

TOKENS = parse_tokens({"tokens": [
    {"name": "alice", "token": "alice-t0ken", "queues": ["billing"]},
    {"name": "bob", "token": "bob-t0ken", "queues": ["sales"]},
    {"name": "carol", "token": "carol-t0ken", "queues": ["*"]},
]})
REFUSED = [Close(4401, "unauthorized")]


def alert(alert_id: str, queue: str, status: str = "firing", acked_by: str | None = None) -> dict:
    """An alert message in alerts.md's shape."""
    return {"type": "alert", "id": alert_id, "rule": "long-queue", "status": status,
            "severity": "warning", "labels": {"queue": queue, "channel": "voice"}, "value": 12,
            "threshold": 10, "summary": "above 10 waiting", "starts_at": "2026-11-22T09:14:00Z",
            "ends_at": None if status == "firing" else "2026-11-22T09:20:00Z",
            "acked_by": acked_by}


def signed_in(name: str, firing: tuple[dict, ...] = ()) -> Session:
    """An OPEN session of `name`, signed in by header, its snapshot taken of `firing`."""
    session = Session(TOKENS)
    assert session.connect([f"Bearer {name}-t0ken"]) == [SignedIn(session.supervisor)]
    session.open(firing)
    return session


def sent(actions: list) -> list[dict]:
    assert all(isinstance(action, Send) for action in actions), actions
    return [action.message for action in actions]


def error(text: str, alert_id: str | None = None) -> dict:
    return {"type": "error", "error": text, **({} if alert_id is None else {"id": alert_id})}


# -- authentication ----------------------------------------------------------------------------
def test_a_bearer_header_signs_in_and_the_snapshot_has_the_alerts_of_the_tokens_queues():
    billing, sales = alert("b1", "billing"), alert("s1", "sales")
    session = Session(TOKENS)
    assert session.state is State.CONNECTING
    assert session.connect(["Bearer alice-t0ken"]) == [SignedIn(Supervisor(
        "alice", frozenset({"billing"})))]
    assert session.state is State.SIGNED_IN
    assert sent(session.open([billing, sales])) == [
        {"type": "snapshot", "user": "alice", "queues": ["billing"], "alerts": [billing]}]
    assert session.state is State.OPEN


def test_the_scheme_is_case_insensitive_and_the_token_trimmed():
    for header in ("bearer carol-t0ken", "BEARER  carol-t0ken "):
        session = Session(TOKENS)
        assert [type(a) for a in session.connect([header])] == [SignedIn], header


def test_a_star_token_sees_every_queue():
    firing = (alert("b1", "billing"), alert("s1", "sales"), alert("x1", "other"))
    carol = Session(TOKENS)
    carol.connect(["Bearer carol-t0ken"])
    assert sent(carol.open(firing)) == [
        {"type": "snapshot", "user": "carol", "queues": ["*"], "alerts": list(firing)}]


def test_without_a_header_the_first_message_must_authenticate():
    session = Session(TOKENS)
    assert session.connect([]) == []
    assert session.state is State.AWAITING_AUTH
    actions = session.receive('{"type":"auth","token":"bob-t0ken"}')
    assert actions == [SignedIn(Supervisor("bob", frozenset({"sales"})))]
    assert sent(session.open([alert("b1", "billing")])) == [
        {"type": "snapshot", "user": "bob", "queues": ["sales"], "alerts": []}]


@pytest.mark.parametrize("headers", [
    ["Bearer nope"], ["Bearer alice-t0ken", "x"], ["Bearer alice-t0ken", "Bearer bob-t0ken"],
    ["Bearer "], ["Bearer"], ["Basic Y2Fyb2w6eA=="], ["alice-t0ken"], ["Bearer caf\xe9"],
    ["Bearer alice-t0ken extra"]], ids=repr)
def test_a_wrong_header_is_refused_at_once_with_4401(headers):
    session = Session(TOKENS)
    assert session.connect(headers) == REFUSED  # no fallback to a first message
    assert session.state is State.CLOSED
    assert session.receive('{"type":"auth","token":"alice-t0ken"}') == []


@pytest.mark.parametrize("first", [
    '{"type":"auth","token":"alice"}', '{"type":"auth"}', '{"type":"auth","token":""}',
    '{"type":"auth","token":["alice-t0ken"]}', '{"type":"auth","token":{"t":"alice-t0ken"}}',
    '{"type":"ping","token":"alice-t0ken"}', '{"token":"alice-t0ken"}', '["auth"]', '"auth"',
    "[" * 30_000, '{"a":' * 10_000, b"\xff\xfe\x00", "", "not json"], ids=lambda x: repr(x)[:40])
def test_a_wrong_first_message_is_refused_with_4401_whatever_it_holds(first):
    session = Session(TOKENS)
    session.connect([])
    assert session.receive(first) == REFUSED
    assert session.state is State.CLOSED


def test_no_first_message_in_time_or_a_handshake_cut_short_is_refused_with_4401():
    for fail in (Session.timed_out, Session.handshake_failed):
        session = Session(TOKENS)
        session.connect([])
        assert fail(session) == REFUSED
        assert fail(session) == []  # closed once
    session = Session(TOKENS)
    assert session.handshake_failed() == REFUSED  # before its headers were read


def test_a_throttled_address_is_refused_without_its_token_being_looked_at():
    session = Session(TOKENS)
    assert session.connect(["Bearer alice-t0ken"], throttled=True) == [
        Close(4401, "too many wrong tokens, try again later")]
    assert session.supervisor is None


def test_a_refused_session_sends_nothing_and_takes_nothing():
    session = Session(TOKENS)
    session.connect(["Bearer nope"])
    assert session.alert(alert("b1", "billing")) == []
    assert session.tiles("15m", [{"queue": "billing", "channel": "voice"}]) == []
    assert session.overflowed() == []
    with pytest.raises(SessionError):
        session.open([])


def test_the_driver_cannot_open_a_session_that_has_not_signed_in_or_connect_twice():
    session = Session(TOKENS)
    with pytest.raises(SessionError):
        session.open([])
    session.connect([])
    with pytest.raises(SessionError):
        session.connect(["Bearer alice-t0ken"])


# -- alerts ------------------------------------------------------------------------------------
def test_transitions_reach_only_the_tokens_of_their_queue():
    alice, bob, carol = signed_in("alice"), signed_in("bob"), signed_in("carol")
    billing = alert("b1", "billing")
    assert alice.alert(billing, published_at=1_000) == [Send(billing, 1_000)]
    assert bob.alert(billing, published_at=1_000) == []
    assert carol.alert(billing, published_at=1_000) == [Send(billing, 1_000)]


def test_no_transition_before_the_snapshot():
    session = Session(TOKENS)
    session.connect(["Bearer carol-t0ken"])
    assert session.alert(alert("b1", "billing")) == []


def test_a_transition_changes_the_mirror_once_however_often_it_is_published():
    mirror = Mirror()
    first = alert("b1", "billing")
    assert mirror.apply(first) == [Forward(first)]
    assert mirror.apply(first) == []  # a worker re-publishing after a crash
    ended = alert("b1", "billing", "resolved")
    assert mirror.apply(ended) == [Forward(ended)]
    assert mirror.firing == {}
    assert mirror.apply(ended) == []  # the end of an alert it no longer has: told already


def test_an_alert_in_the_loaded_mirror_is_in_snapshots_and_not_told_again():
    mirror = Mirror()
    billing = alert("b1", "billing")
    mirror.load({"b1": billing})
    session = Session(TOKENS)
    session.connect(["Bearer alice-t0ken"])
    assert sent(session.open(mirror.firing.values()))[0]["alerts"] == [billing]
    assert mirror.apply(billing) == []


def test_an_ack_is_sent_again_with_acked_by_to_every_client_that_may_see_it():
    billing = alert("b1", "billing")
    mirror = Mirror()
    mirror.apply(billing)
    alice, bob, carol = (signed_in(name, (billing,)) for name in ("alice", "bob", "carol"))
    assert alice.receive('{"type":"ack","id":"b1"}') == [FindAlert("b1")]
    assert alice.alert_found("b1", billing) == [StoreAck("b1", "alice")]
    assert alice.ack_answered("b1", ACKED, "alice") == []  # it comes back through the store
    acked = alert("b1", "billing", acked_by="alice")
    (forward,) = mirror.apply(acked)
    assert forward == Forward(acked)
    assert [sent(s.alert(forward.message, 5)) for s in (alice, bob, carol)] == [
        [acked], [], [acked]]


def test_the_first_ack_wins_and_an_ack_out_of_scope_reads_as_an_unknown_alert():
    billing = alert("b1", "billing")
    carol, bob = signed_in("carol", (billing,)), signed_in("bob", (billing,))
    assert sent(carol.ack_answered("b1", ALREADY, "alice")) == [
        error("already acknowledged by alice", "b1")]
    assert sent(bob.alert_found("b1", billing)) == [error("no such alert", "b1")]
    assert sent(carol.alert_found("zz", None)) == [error("no such alert", "zz")]
    assert sent(carol.ack_answered("zz", "unknown", "")) == [error("no such alert", "zz")]
    assert sent(carol.store_failed("b1", "the alert store is unreachable")) == [
        error("not acknowledged: the alert store is unreachable", "b1")]


def test_a_resolved_alert_can_be_acknowledged_and_its_resolution_carries_the_ack():
    mirror = Mirror()
    mirror.apply(alert("b1", "billing"))
    ended = alert("b1", "billing", "resolved", acked_by="alice")
    assert mirror.apply(ended) == [Forward(ended)]
    late_ack = alert("b1", "billing", "resolved", acked_by="carol")
    assert mirror.apply(late_ack) == [Forward(late_ack)]  # acked after it resolved


def test_an_ack_lost_with_redis_is_put_back_and_nobody_is_told_twice():
    mirror = Mirror()
    mirror.apply(alert("b1", "billing", acked_by="carol"))
    again = alert("b1", "billing")  # re-published by its worker after the wipe
    assert mirror.apply(again) == [StoreAck("b1", "carol")]
    assert mirror.firing["b1"]["acked_by"] == "carol"
    ended = alert("b1", "billing", "resolved")
    assert mirror.apply(ended) == [StoreAck("b1", "carol"),
                                   Forward({**ended, "acked_by": "carol"})]


# -- other client messages -----------------------------------------------------------------------
def test_ping_is_answered_pong_and_a_second_auth_is_ignored():
    session = signed_in("alice")
    assert sent(session.receive('{"type":"ping"}')) == [{"type": "pong"}]
    assert session.receive('{"type":"auth","token":"carol-t0ken"}') == []
    assert session.supervisor.name == "alice"


@pytest.mark.parametrize(("raw", "text"), [
    ("[" * 30_000, "not a JSON object"), ('{"a":' * 10_000, "not a JSON object"),
    (b"\xff\xfe", "not a JSON object"), ("[1, 2]", "not a JSON object"),
    ('"text"', "not a JSON object"), ('{"type": [1]}', "unknown message type (not shown)"),
    ('{"type": "' + "x" * 1000 + '"}', "unknown message type (not shown)"),
    ('{"type": "hello"}', "unknown message type 'hello'"),
    ("{}", "unknown message type (not shown)"),
    ('{"type":"ack","id":{"deep":[[[]]]}}', "ack needs the alert's id"),
    ('{"type":"ack"}', "ack needs the alert's id")], ids=lambda x: repr(x)[:40])
def test_a_bad_message_is_answered_with_an_error_and_the_session_goes_on(raw, text):
    session = signed_in("carol")
    assert session.receive(raw) == [Send(error(text), bad_message=True)]
    assert session.state is State.OPEN
    assert sent(session.receive('{"type":"ping"}')) == [{"type": "pong"}]


def test_a_message_that_failed_on_a_bug_costs_that_message_only():
    session = signed_in("carol")
    assert sent(session.internal_error()) == [error("the message could not be handled")]
    assert session.state is State.OPEN


# -- views ---------------------------------------------------------------------------------------
AGENTS = [
    {"agent_id": "a7", "state": "busy", "since": "2026-11-22T09:14:03Z",
     "queues": ["billing", "sales"], "handled": 12, "handle_seconds_avg": 281.5,
     "hold_seconds_avg": 40.0, "transferred": 1, "csat_ratio": 0.9},
    {"agent_id": "b2", "state": "idle", "since": "2026-11-22T09:10:00Z", "queues": ["sales"],
     "handled": 0, "handle_seconds_avg": None, "hold_seconds_avg": None, "transferred": 0,
     "csat_ratio": None}]


def test_agents_only_listing_the_tokens_queues_naming_only_those_and_only_on_a_change():
    alice, carol = signed_in("alice"), signed_in("carol")
    for session in (alice, carol):
        assert session.receive('{"type":"subscribe","topics":["agents"]}') == [
            FetchView("agents")]
    assert sent(alice.agents("15m", AGENTS)) == [{"type": "agents", "window": "15m", "agents": [
        {**AGENTS[0], "queues": ["billing"]}]}]
    assert sent(carol.agents("15m", AGENTS)) == [
        {"type": "agents", "window": "15m", "agents": AGENTS}]
    assert alice.agents("15m", AGENTS) == []  # unchanged
    offline = [AGENTS[0], {**AGENTS[1], "state": "offline"}]
    assert alice.agents("15m", offline) == []  # b2 is not billing's
    assert sent(carol.agents("15m", offline))[0]["agents"] == offline


def test_a_client_that_did_not_subscribe_gets_only_the_contracts_messages():
    session = signed_in("carol")
    assert session.agents("15m", AGENTS) == []
    assert session.tiles("15m", [{"queue": "billing", "channel": "voice"}]) == []


def test_a_subscription_replaces_the_previous_one_and_sends_its_views_again():
    session = signed_in("carol")
    assert session.receive('{"type":"subscribe","topics":["kpis","agents"]}') == [
        FetchView("kpis"), FetchView("agents")]
    session.agents("15m", AGENTS)
    assert session.receive('{"type":"subscribe","topics":["agents"]}') == [FetchView("agents")]
    assert sent(session.agents("15m", AGENTS))[0]["agents"] == AGENTS  # again, though unchanged
    assert session.tiles("15m", [{"queue": "billing", "channel": "voice"}]) == []
    assert session.receive('{"type":"subscribe","kpis":true}') == [FetchView("kpis")]
    assert session.agents("15m", AGENTS) == []
    assert session.receive('{"type":"subscribe","topics":[]}') == []
    assert session.topics == frozenset()


@pytest.mark.parametrize("topics", ['["agents","alerts"]', '"agents"', '[["agents"]]', "{}"])
def test_unknown_topics_are_refused_and_the_subscription_kept(topics):
    session = signed_in("alice")
    session.receive('{"type":"subscribe","topics":["agents"]}')
    assert session.receive(f'{{"type":"subscribe","topics":{topics}}}') == [
        Send(error("topics must be a list of kpis, agents"), bad_message=True)]
    assert session.topics == frozenset({"agents"})


def test_tiles_of_the_tokens_queues_without_the_stores_bookkeeping():
    tiles = [{"queue": "billing", "channel": "voice", "waiting": 3, "at": 1, "window": "15m"},
             {"queue": "sales", "channel": "chat", "waiting": 0, "at": 1, "window": "15m"}]
    session = signed_in("alice")
    session.receive('{"type":"subscribe","topics":["kpis"]}')
    assert sent(session.tiles("15m", tiles)) == [{"type": "kpis", "window": "15m", "tiles": [
        {"queue": "billing", "channel": "voice", "waiting": 3}]}]
    assert sent(session.tiles("15m", tiles)) != []  # tiles go every time, changed or not


# -- the end -------------------------------------------------------------------------------------
def test_a_client_that_falls_behind_is_closed_with_1013_once_and_then_given_nothing():
    session = signed_in("carol")
    assert session.overflowed() == [Close(1013, "too slow, reconnect")]
    assert session.state is State.CLOSED
    assert session.overflowed() == []
    assert session.alert(alert("b1", "billing")) == []
    assert session.receive('{"type":"ping"}') == []


def test_a_closed_connection_is_given_nothing():
    session = signed_in("carol")
    session.connection_closed()
    assert session.alert(alert("b1", "billing")) == []
    assert session.overflowed() == []
