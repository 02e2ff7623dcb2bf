"""The dead-letter message (stream/deadletter.py, events.md "Bad input" and 1.1): the record
unchanged with its reason, detail and source in headers, cut only when it could not be
written whole. Sizes are worked out by hand from the header names and values; the limits
are literals here (not the module's constants) so that a changed limit shows."""

from __future__ import annotations

from ccmon.stream.deadletter import dead_letter_message
from ccmon.stream.engine import DeadLetter, Record

SOURCE = "cc.voice:0"


def letter(value: bytes | None, key: bytes | None, *, offset: int = 3, reason: str = "bad_value",
           detail: str = "x") -> DeadLetter:
    return DeadLetter(SOURCE, Record(SOURCE, offset, "voice", value, key), reason, detail)


def test_a_record_that_fits_is_written_unchanged_with_reason_detail_and_source():
    key, value, headers = dead_letter_message(letter(b'{"type": 1}', b"c1", offset=41,
                                                     reason="wrong_type", detail="type"))
    assert (key, value) == (b"c1", b'{"type": 1}')
    assert headers == [("ccmon-reason", b"wrong_type"), ("ccmon-detail", b"type"),
                       ("ccmon-source", b"cc.voice:0:41")]


def test_a_record_without_key_or_value_is_written_as_it_came():
    """A Kafka record may have no key, and no value (a tombstone): nothing to cut."""
    assert dead_letter_message(letter(None, None), limit=100) == (None, None, [
        ("ccmon-reason", b"bad_value"), ("ccmon-detail", b"x"),
        ("ccmon-source", b"cc.voice:0:3")])


def test_the_value_is_cut_only_beyond_the_room_the_key_and_headers_leave():
    # Headers: "ccmon-reason" + "bad_value" = 12 + 9, "ccmon-detail" + "x" = 12 + 1,
    # "ccmon-source" + "cc.voice:0:3" = 12 + 12: 58 bytes. Key "k": 1. Room: 1000 - 59 = 941.
    assert dead_letter_message(letter(b"v" * 941, b"k"), limit=1000)[:2] == (b"k", b"v" * 941)
    key, value, headers = dead_letter_message(letter(b"v" * 942, b"k"), limit=1000)
    # Cut to the room less 64 bytes for the header that says the size: 941 - 64 = 877.
    assert (key, value) == (b"k", b"v" * 877)
    assert headers[3:] == [("ccmon-original-size", b"942")]
    # Without a key the room is 1000 - 58 = 942.
    assert dead_letter_message(letter(b"v" * 942, None), limit=1000)[1] == b"v" * 942
    key, value, headers = dead_letter_message(letter(b"v" * 943, None), limit=1000)
    assert (key, value, headers[3:]) == (None, b"v" * 878, [("ccmon-original-size", b"943")])


def test_a_key_longer_than_4_kib_is_cut_with_its_size():
    key, _, headers = dead_letter_message(letter(b"{}", b"k" * 4096))
    assert key == b"k" * 4096 and len(headers) == 3
    key, _, headers = dead_letter_message(letter(b"{}", b"k" * 4097))
    assert key == b"k" * 4096
    assert headers[3:] == [("ccmon-original-key-size", b"4097")]


def test_a_detail_is_cut_at_1_kib():
    _, _, headers = dead_letter_message(letter(b"{}", None, detail="d" * 5000))
    assert dict(headers)["ccmon-detail"] == b"d" * 1024


def test_a_message_over_kafkas_default_limit_fills_900_000_bytes_less_the_margin():
    """Kafka's default request and message limits are 1 MB: a dead letter takes at most
    900 000 bytes of them (the rest is the record and batch framing)."""
    big = letter(b"x" * 1_200_000, b"k" * 10_000, offset=7, reason="invalid_json", detail="no")
    key, value, headers = dead_letter_message(big)
    # Headers before the value's: 12 + 12 ("invalid_json") + 12 + 2 ("no") + 12 + 12
    # ("cc.voice:0:7") + 23 + 5 ("ccmon-original-key-size", "10000") = 90; key 4096 bytes.
    # Room: 900 000 - 4096 - 90 = 895 814, the value cut to 895 814 - 64 = 895 750.
    assert len(key) == 4096 and len(value) == 895_750
    assert headers[4:] == [("ccmon-original-size", b"1200000")]
    # With that header (19 + 7 bytes): 4096 + 895 750 + 90 + 26 = 899 962 in all.
    assert len(key) + len(value) + sum(len(n) + len(v) for n, v in headers) == 899_962
