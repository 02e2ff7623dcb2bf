"""Decoding and validation of v1 contact-centre events (events.md).

`decode` turns one Kafka message value into an `Event`, or raises `BadEvent` with a reason
code (the `reason` label of `ccmon_events_invalid_total`) and a detail for the dead-letter.
Lifecycle checks need state and live in `lifecycle.py`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

import orjson

CHANNELS = frozenset(("voice", "chat", "social"))
AGENT_STATES = ("available", "busy", "acw", "away", "offline")
SURVEY_RANGES = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}

CONTACT_TYPES = frozenset((
    "contact.queued", "contact.answered", "contact.hold_started", "contact.hold_ended",
    "contact.transferred", "contact.abandoned", "contact.ended", "survey.submitted",
))
AGENT_TYPE = "agent.state"
TYPES = CONTACT_TYPES | {AGENT_TYPE}

# The closed set of reason codes: a metric label, so it must stay small and fixed.
# `internal`: the monitor failed on this record (a bug of ours, never a verdict on the input);
# the record is dead-lettered all the same so that one message can never stop the monitor.
REASONS = (
    "not_utf8", "invalid_json", "not_object", "missing_field", "wrong_type", "bad_value",
    "unknown_type", "bad_ts", "channel_mismatch", "lifecycle", "internal",
)

BOM = b"\xef\xbb\xbf"
NAME_CHARS = 256  # ids and queue names (events.md 1.1)
EVENT_ID_CHARS = 128
# events.md 1.1: `ts` within years 1970-9999, `wrap_seconds` at most a day.
TS_MIN_MS = 0
TS_END_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z
WRAP_MAX_SECONDS = 86_400
# RFC 3339 date-time (T and Z in either case, or a space as its note allows). Python's parser
# also takes ISO 8601 forms that are not RFC 3339: week dates, no colons, no seconds, `+01`.
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                     r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


class BadEvent(Exception):
    """An event that must be dead-lettered: `reason` is a code of REASONS, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Event:
    """A valid v1 event, normalised: `ts` in Unix milliseconds, `channel` resolved (None for
    agents), `wrap_seconds` in milliseconds. Whole milliseconds keep window edges and sums exact.
    """

    event_id: str
    type: str
    ts: int
    channel: str | None
    contact_id: str = ""
    queue: str | None = None  # queued (req), survey (opt)
    to_queue: str = ""  # transferred
    agent_id: str | None = None  # answered (opt), agent.state (req)
    resolved: bool | None = None
    wrap_ms: int = 0
    kind: str = ""  # survey kind
    score: int = 0
    state: str = ""  # agent state
    queues: tuple[str, ...] = ()
    customer_id: str | None = None  # contact.queued (opt): its contact takes part in cases


def parse_ts(value: object) -> int:
    """RFC 3339 with an offset, or epoch seconds -> Unix milliseconds (the engine's resolution)."""
    if isinstance(value, bool):
        raise BadEvent("bad_ts", "ts is a boolean")
    if isinstance(value, int | float):
        # Checked before rounding: 1e308 * 1000 is inf, and round(inf) raises (NaN fails too).
        if not TS_MIN_MS <= value * 1000 < TS_END_MS:
            raise BadEvent("bad_ts", f"ts {value!r} is not an epoch second of years 1970-9999")
        return round(value * 1000)
    if not isinstance(value, str):
        raise BadEvent("bad_ts", "ts is neither an RFC 3339 string nor a number")
    try:  # RFC 3339 allows a lower-case "z" too; Python's parser does not
        parsed = datetime.fromisoformat(value[:-1] + "Z" if value[-1:] == "z" else value)
    except ValueError:
        raise BadEvent("bad_ts", f"ts {value[:64]!r} is not RFC 3339") from None
    if not RFC3339.fullmatch(value):
        raise BadEvent("bad_ts", f"ts {value[:64]!r} is not an RFC 3339 date-time with offset")
    try:
        ms = round(parsed.timestamp() * 1000)
    except (OverflowError, ValueError):  # an offset that pushes year 1 or 9999 out of range
        ms = -1
    if not TS_MIN_MS <= ms < TS_END_MS:
        raise BadEvent("bad_ts", f"ts {value[:64]!r} is outside years 1970-9999")
    return ms


def _text(event: dict, name: str, *, required: bool = True,
          limit: int = NAME_CHARS) -> str | None:
    value = event.get(name)
    if value is None:
        if required:
            raise BadEvent("missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise BadEvent("wrong_type", f"{name} must be a string")
    if not 1 <= len(value) <= limit:
        raise BadEvent("bad_value", f"{name} must have 1 to {limit} characters")
    return value


def decode(raw: bytes, topic_channel: str | None = None) -> Event:
    """One message value -> Event. `topic_channel` is the channel of the topic it came from."""
    if raw is None:  # a tombstone: Kafka's null value
        raise BadEvent("invalid_json", "the value is empty (null)")
    if raw[:3] == BOM:
        raw = raw[3:]
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if isinstance(raw, bytes | bytearray | memoryview):
            try:
                bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise BadEvent("not_utf8", "the value is not UTF-8") from None
        data = _beyond_double(raw, exc)
    if not isinstance(data, dict):
        raise BadEvent("not_object", f"the value is a JSON {type(data).__name__}, not an object")
    return validate(data, topic_channel)


def _beyond_double(raw: bytes | str, error: orjson.JSONDecodeError) -> object:
    """orjson refuses valid JSON whose numbers overflow a double (`1e400`): read it with the
    standard library (as inf), so the field is judged by its meaning (`bad_ts`, `bad_value`)
    and not as broken JSON. Anything else orjson refuses is invalid JSON."""
    if "infinity" not in str(error):
        raise BadEvent("invalid_json", f"not JSON: {error}") from None
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise BadEvent("invalid_json", f"not JSON: {error}") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def validate(data: dict, topic_channel: str | None = None) -> Event:
    event_id = _text(data, "event_id", limit=EVENT_ID_CHARS)
    kind = data.get("type")
    if kind is None:
        raise BadEvent("missing_field", "type is required")
    if not isinstance(kind, str):
        raise BadEvent("wrong_type", "type must be a string")
    if kind not in TYPES:
        raise BadEvent("unknown_type", f"type {str(kind)[:64]!r} is not a v1 event type")
    if "ts" not in data:
        raise BadEvent("missing_field", "ts is required")
    ts = parse_ts(data["ts"])
    channel = data.get("channel")
    if channel is not None:
        if not isinstance(channel, str):
            raise BadEvent("wrong_type", "channel must be a string")
        if channel not in CHANNELS:
            raise BadEvent("bad_value", f"channel {channel[:32]!r} is not voice, chat or social")
        if topic_channel is not None and channel != topic_channel:
            raise BadEvent(
                "channel_mismatch", f"channel {channel} arrived on the {topic_channel} topic")
    if kind == AGENT_TYPE:
        return _agent_event(data, event_id, ts)
    channel = channel or topic_channel
    if channel is None:
        raise BadEvent("missing_field", "channel is required on a topic of no channel")
    event = Event(event_id, kind, ts, channel, _text(data, "contact_id"))
    if kind == "contact.queued":
        event.queue = _text(data, "queue")
        event.customer_id = _text(data, "customer_id", required=False)
    elif kind == "contact.answered":
        event.agent_id = _text(data, "agent_id", required=False)
    elif kind == "contact.transferred":
        event.to_queue = _text(data, "to_queue")
    elif kind == "contact.ended":
        resolved = data.get("resolved")
        if resolved is not None and not isinstance(resolved, bool):
            raise BadEvent("wrong_type", "resolved must be a boolean")
        event.resolved = resolved
        wrap = data.get("wrap_seconds", 0)
        if wrap is None:
            wrap = 0
        if isinstance(wrap, bool) or not isinstance(wrap, int | float):
            raise BadEvent("wrong_type", "wrap_seconds must be a number")
        if not 0 <= wrap <= WRAP_MAX_SECONDS:  # also refuses NaN
            raise BadEvent("bad_value", f"wrap_seconds must be from 0 to {WRAP_MAX_SECONDS}")
        event.wrap_ms = round(wrap * 1000)
    elif kind == "survey.submitted":
        _survey(data, event)
    return event


def _survey(data: dict, event: Event) -> None:
    kind = data.get("kind")
    if kind is None:
        raise BadEvent("missing_field", "kind is required")
    if not isinstance(kind, str):
        raise BadEvent("wrong_type", "kind must be a string")
    if kind not in SURVEY_RANGES:
        raise BadEvent("bad_value", f"kind {str(kind)[:32]!r} is not csat, nps or ces")
    score = data.get("score")
    if score is None:
        raise BadEvent("missing_field", "score is required")
    if isinstance(score, bool) or not isinstance(score, int):
        raise BadEvent("wrong_type", "score must be an integer")
    low, high = SURVEY_RANGES[kind]
    if not low <= score <= high:
        raise BadEvent("bad_value", f"{kind} score {score} is outside {low}..{high}")
    event.kind = kind
    event.score = score
    event.queue = _text(data, "queue", required=False)


def _agent_event(data: dict, event_id: str, ts: int) -> Event:
    agent_id = _text(data, "agent_id")
    state = data.get("state")
    if state is None:
        raise BadEvent("missing_field", "state is required")
    if not isinstance(state, str):
        raise BadEvent("wrong_type", "state must be a string")
    if state not in AGENT_STATES:
        raise BadEvent("bad_value", f"state {str(state)[:32]!r} is not an agent state")
    queues = data.get("queues")
    if queues is None:
        raise BadEvent("missing_field", "queues is required")
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise BadEvent("wrong_type", "queues must be a list of queue names")
    if not all(1 <= len(q) <= NAME_CHARS for q in queues):
        raise BadEvent("bad_value", f"each of queues must have 1 to {NAME_CHARS} characters")
    return Event(event_id, AGENT_TYPE, ts, None, agent_id=agent_id, state=state,
                 queues=tuple(dict.fromkeys(queues)))
