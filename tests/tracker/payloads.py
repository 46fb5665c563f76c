"""Payloads that are not wire v1 batches, each with the reason the tracker counts it under.

Shared by the decoder's unit tests and the tracker's integration tests (a real broker carries
each of them to the real tracker).
"""

from __future__ import annotations

import json

from hazmon.wire import MAX_PAYLOAD_BYTES

# The reasons as the metric labels them (hazmon_tracker_messages_malformed_total{reason}).
TOO_LARGE, NOT_JSON, SCHEMA = "too_large", "not_json", "schema"

GOOD_BATCH = {"v": 1, "gw": "91510100MALABE0001", "seq": 7, "ep": 42, "src": "dcs", "sent": 1.5,
              "samples": [{"t": "LT-101", "ts": 1764323000.11, "v": 12.37}, {"t": "GT-201", "ts": 1764323000, "v": 0}]}


def enc(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def with_field(path: tuple, value: object) -> bytes:
    """GOOD_BATCH with one field (a key path into it) replaced by raw JSON text `value`."""
    marker = "@@MARK@@"
    obj = json.loads(json.dumps(GOOD_BATCH))
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = marker
    return enc(obj).replace(f'"{marker}"'.encode(), value.encode() if isinstance(value, str) else value)


# The payloads that escaped decode as OverflowError / RecursionError, or were taken for data.
KILLERS: dict[str, tuple[bytes, str]] = {
    "ts of 401 digits": (with_field(("samples", 0, "ts"), "9" * 401), SCHEMA),
    "value of 401 digits": (with_field(("samples", 0, "v"), "-" + "9" * 401), SCHEMA),
    "seq 1e400": (with_field(("seq",), "1e400"), SCHEMA),
    "sent 1e400": (with_field(("sent",), "1e400"), SCHEMA),
    "seq of 30 digits": (with_field(("seq",), "9" * 30), SCHEMA),
    "seq of 5000 digits": (with_field(("seq",), "9" * 5000), NOT_JSON),  # beyond Python's int parsing limit
    "nested 1000 deep": (b"[" * 1000 + b"]" * 1000, NOT_JSON),
    "nested 100000 deep in a field": (with_field(("samples",), "[" * 100_000 + "]" * 100_000), NOT_JSON),
    "a list": (b"[1, 2]", SCHEMA),
    "a string": (b'"batch"', SCHEMA),
    "null": (b"null", SCHEMA),
    "a number": (b"1e400", SCHEMA),
    "invalid UTF-8": (b'{"v":1,"gw":"\xff\xfe"}', NOT_JSON),
    "a lone surrogate in UTF-8": (b'{"v":1,"gw":"\xed\xa0\x80"}', NOT_JSON),
    "UTF-16": (enc(GOOD_BATCH).decode().encode("utf-16"), NOT_JSON),
    "empty": (b"", NOT_JSON),
    "over the size limit": (enc(GOOD_BATCH | {"pad": "x" * MAX_PAYLOAD_BYTES}), TOO_LARGE),
    "seq true": (with_field(("seq",), "true"), SCHEMA),
    "seq 1.7": (with_field(("seq",), "1.7"), SCHEMA),
    "seq as text": (with_field(("seq",), '"7"'), SCHEMA),
    "seq negative": (with_field(("seq",), "-1"), SCHEMA),
    "seq 2^63": (with_field(("seq",), str(2**63)), SCHEMA),
    "ts true": (with_field(("samples", 0, "ts"), "true"), SCHEMA),
    "ts as text": (with_field(("samples", 0, "ts"), '"1764323000"'), SCHEMA),
    "ts NaN": (with_field(("samples", 0, "ts"), "NaN"), SCHEMA),
    "value Infinity": (with_field(("samples", 0, "v"), "-Infinity"), SCHEMA),
    "value null": (with_field(("samples", 0, "v"), "null"), SCHEMA),
    "tag a list": (with_field(("samples", 0, "t"), '["LT-101"]'), SCHEMA),
    "tag a number": (with_field(("samples", 0, "t"), "101"), SCHEMA),
    "gw a number": (with_field(("gw",), "915101"), SCHEMA),
    "src null": (with_field(("src",), "null"), SCHEMA),
    "samples an object": (with_field(("samples",), '{"t":"LT-101"}'), SCHEMA),
    "samples a string": (with_field(("samples",), '"LT-101"'), SCHEMA),
    "a sample a list": (with_field(("samples", 0), '["LT-101",1,2]'), SCHEMA),
    "a sample a string": (with_field(("samples", 0), '"LT-101"'), SCHEMA),
    "a sample without ts": (with_field(("samples", 0), '{"t":"LT-101","v":1}'), SCHEMA),
    "sent as text": (with_field(("sent",), '"now"'), SCHEMA),
    "ep 1.0": (with_field(("ep",), "1.0"), SCHEMA),
    "version 2": (with_field(("v",), "2"), SCHEMA),
    "version true": (with_field(("v",), "true"), SCHEMA),  # True == 1 in Python: must not pass as v1
    "no gw": (enc({k: v for k, v in GOOD_BATCH.items() if k != "gw"}), SCHEMA),
}
