"""Unit: wire.decode refuses whatever is not a v1 batch with WireError (and its reason), and only WireError.

A hostile or broken gateway controls every byte of a payload; an exception other than WireError
escaping decode killed the tracker's MQTT thread (N8: reliable transmission to the province).
"""

from __future__ import annotations

import random

import pytest

from hazmon import wire
from hazmon.wire import WireError
from tracker.payloads import GOOD_BATCH, KILLERS, enc, with_field


def test_a_good_batch_decodes() -> None:
    b = wire.decode(enc(GOOD_BATCH))
    assert b == wire.Batch("91510100MALABE0001", 7, "dcs",
                           (wire.Sample("LT-101", 1764323000.11, 12.37), wire.Sample("GT-201", 1764323000.0, 0.0)),
                           1.5, 42)
    assert all(type(s.ts) is float and type(s.value) is float for s in b.samples)


@pytest.mark.parametrize("name", list(KILLERS))
def test_each_killer_payload_is_a_wire_error_with_its_reason(name: str) -> None:
    payload, reason = KILLERS[name]
    with pytest.raises(WireError) as caught:
        wire.decode(payload)
    assert caught.value.reason == reason, caught.value


def mutations(rng: random.Random, base: bytes) -> bytes:
    """One random corruption of a valid payload: bytes flipped, cut, repeated, spliced or typed wrong."""
    kind = rng.randrange(7)
    b = bytearray(base)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        b = b[:rng.randrange(len(b))]
    elif kind == 2:
        i = rng.randrange(len(b))
        b[i:i] = b[i:i + rng.randint(1, 40)] * rng.randint(1, 50)
    elif kind == 3:
        depth = rng.choice([10, 999, 1000, 5000])
        b = bytearray(base.replace(b'"samples":', b'"samples":' + b"[" * depth, 1) + b"]" * depth)
    elif kind == 4:
        values = ["null", "true", "1e400", "-1e400", "NaN", "9" * rng.randint(20, 500), '"x"', "[]", "{}", "-0",
                  "1.5", "[[[]]]", '{"t":1}']
        field = rng.choice([("seq",), ("ep",), ("sent",), ("gw",), ("src",), ("v",), ("samples",),
                            ("samples", 0), ("samples", 0, "t"), ("samples", 0, "ts"), ("samples", 1, "v")])
        b = bytearray(with_field(field, rng.choice(values)))
    elif kind == 5:
        b = bytearray(rng.randbytes(rng.randint(0, 300)))
    else:
        i = rng.randrange(len(b))
        b[i:i] = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x00", b"\\u0000", b"\\ud800"])
    return bytes(b)


def test_decode_raises_only_wire_error_over_many_malformed_payloads() -> None:
    rng = random.Random(20261202)  # fixed: a failure reproduces
    base = enc(GOOD_BATCH)
    refused = accepted = 0
    for _ in range(20_000):
        payload = mutations(rng, base)
        try:
            batch = wire.decode(payload)
        except WireError as exc:
            assert exc.reason in wire.REASONS
            refused += 1
            continue
        # Whatever is accepted is well typed: what the tracker's state and store rely on.
        accepted += 1
        assert type(batch.gateway) is str and type(batch.source) is str
        assert type(batch.seq) is int and 0 <= batch.seq <= wire.MAX_SEQ
        assert type(batch.epoch) is int and 0 <= batch.epoch <= wire.MAX_EPOCH
        for s in batch.samples:
            assert type(s.tag) is str and type(s.ts) is float and type(s.value) is float
            assert s.ts == s.ts and abs(s.ts) != float("inf") and abs(s.value) != float("inf")
    assert refused > 15_000 and accepted > 0  # the mutations mostly break it, sometimes harmlessly
