"""The dead-letter message: what a rejected input record becomes on the dead-letter topic.

events.md: the record is written unchanged, with its reason. The reason, a detail and where it
came from travel as headers, so the value stays the integrator's bytes. One exception
(events.md 1.1): a record too large to be written again whole (the broker took it, but with
our headers it would pass the producer's request limit) is cut, and its original size is said
in a header, so one huge message can never stall the monitor on a write that always fails.
"""

from __future__ import annotations

from typing import NamedTuple

from .engine import DeadLetter

# Room for the key, value and headers of one dead letter: under Kafka's default 1 MB
# request and message limits with a margin for the record and batch framing.
DEAD_LETTER_BYTES = 900_000
KEY_BYTES = 4096  # a key is an id: one longer than this is cut too
DETAIL_BYTES = 1024

Headers = list[tuple[str, bytes]]


class DeadLetterMessage(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: Headers


def dead_letter_message(dead: DeadLetter, limit: int = DEAD_LETTER_BYTES) -> DeadLetterMessage:
    source, record, reason, detail = dead
    key, value = record.key, record.value
    headers: Headers = [
        ("ccmon-reason", reason.encode()),
        ("ccmon-detail", detail.encode()[:DETAIL_BYTES]),
        ("ccmon-source", f"{source}:{record.offset}".encode()),
    ]
    if key is not None and len(key) > KEY_BYTES:
        headers.append(("ccmon-original-key-size", str(len(key)).encode()))
        key = key[:KEY_BYTES]
    room = limit - len(key or b"") - sum(len(name) + len(data) for name, data in headers)
    if value is not None and len(value) > room:
        headers.append(("ccmon-original-size", str(len(value)).encode()))
        value = value[:room - 64]  # the header just added, with room to spare
    return DeadLetterMessage(key, value, headers)
