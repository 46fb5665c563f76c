"""Unit: register decoding (known vectors, every type and order) and read planning."""

from __future__ import annotations

import pytest

from hazmon.collector.config import TagConfig
from hazmon.collector.registers import decode, from_value, plan_reads


def tag(**kw) -> TagConfig:
    return TagConfig.model_validate({"code": "T", "register": 0, **kw})


# Hand-written vectors (IEEE 754 and two's complement), not derived from the code under test.
@pytest.mark.parametrize(
    ("regs", "kw", "value"),
    [
        ([0x3F80, 0x0000], {"type": "float32"}, 1.0),
        ([0x0000, 0x3F80], {"type": "float32", "word_order": "little"}, 1.0),
        ([0x803F, 0x0000], {"type": "float32", "byte_order": "little"}, 1.0),
        ([0x0000, 0x803F], {"type": "float32", "byte_order": "little", "word_order": "little"}, 1.0),
        ([0xC059, 0x0000, 0x0000, 0x0000], {"type": "float64"}, -100.0),
        ([0x0000, 0x0000, 0x0000, 0xC059], {"type": "float64", "word_order": "little"}, -100.0),
        ([0xFFFF], {"type": "int16"}, -1.0),
        ([0xFFFF], {"type": "uint16"}, 65535.0),
        ([0x3412], {"type": "uint16", "byte_order": "little"}, 0x1234),
        ([0xFFFF, 0xFFFE], {"type": "int32"}, -2.0),
        ([0xFFFE, 0xFFFF], {"type": "int32", "word_order": "little"}, -2.0),
        ([0x0001, 0x0000], {"type": "uint32"}, 65536.0),
        ([0x0000, 0x0001], {"type": "uint32", "word_order": "little"}, 65536.0),
        ([0x0100, 0x0000], {"type": "uint32", "byte_order": "little"}, 65536.0),
        ([1234], {"type": "int16", "scale": 0.1, "offset": -20}, 103.4),
    ],
)
def test_decode_known_vectors(regs, kw, value):
    assert decode(regs, tag(**kw)) == pytest.approx(value)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int32", "uint32", "float32", "float64"])
@pytest.mark.parametrize("bo", ["big", "little"])
@pytest.mark.parametrize("wo", ["big", "little"])
def test_round_trip(dtype, bo, wo):
    value = {"int16": -300, "uint16": 65000, "int32": -70000, "uint32": 4_000_000_000,
             "float32": -3.5, "float64": 1e300}[dtype]
    t = tag(type=dtype, byte_order=bo, word_order=wo)
    assert decode(from_value(value, t.type, bo, wo), t) == pytest.approx(value)


def test_plan_groups_contiguous_tags_per_table():
    tags = [
        tag(code="a", register=0, type="float32"),
        tag(code="b", register=2, type="int16"),
        tag(code="c", register=3, type="float64"),
        tag(code="far", register=100, type="uint16"),  # a gap: never read across it
        tag(code="in", register=0, function="input", type="uint16"),
    ]
    reads = plan_reads(tags)
    spans = [(r.function, r.start, r.count, [t.code for t in r.tags]) for r in reads]
    assert spans == [
        ("holding", 0, 7, ["a", "b", "c"]),
        ("holding", 100, 1, ["far"]),
        ("input", 0, 1, ["in"]),
    ]


def test_plan_splits_at_125_registers():
    tags = [tag(code=f"t{i}", register=2 * i, type="float32") for i in range(100)]  # 200 registers
    reads = plan_reads(tags)
    assert [r.count for r in reads] == [124, 76]
    assert all(r.count <= 125 for r in reads)
    assert sum(len(r.tags) for r in reads) == 100


def test_plan_keeps_overlapping_tags_in_one_read():
    tags = [tag(code="whole", register=10, type="uint32"), tag(code="low", register=11, type="uint16")]
    (read,) = plan_reads(tags)
    assert (read.start, read.count) == (10, 2)
    assert dict(read.values([0x0001, 0x0002])) == {"whole": 65538.0, "low": 2.0}
