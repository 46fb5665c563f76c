"""Build a hazmon.wire v1 message around a queued batch without decoding and re-encoding it.

The queue stores each batch's "samples" array already in wire JSON; at publish time only the
envelope (gw, seq, ep, src, sent) is added. This is what lets a one-hour backlog replay quickly.
tests/collector/test_queue.py checks that hazmon.wire.decode reads it back exactly.
"""

from __future__ import annotations

import json

from hazmon.wire import MAX_EPOCH, MAX_PAYLOAD_BYTES, SCHEMA_VERSION


def message(gateway: str, seq: int, source: str, samples_json: str, sent: float, epoch: int = 0) -> bytes:
    """`epoch` 0 leaves `ep` out, as wire.Batch.encode does."""
    ep = f',"ep":{int(epoch)}' if epoch else ""
    return (
        f'{{"v":{SCHEMA_VERSION},"gw":{json.dumps(gateway, ensure_ascii=False)},"seq":{int(seq)}{ep},'
        f'"src":{json.dumps(source, ensure_ascii=False)},"sent":{float(sent)!r},"samples":{samples_json}}}'
    ).encode()


def samples_budget(gateway: str, sources: list[str]) -> int:
    """The most bytes a batch's "samples" array may take so that its message stays within
    wire.MAX_PAYLOAD_BYTES, for the longest envelope any of these sources can get."""
    envelope = max(len(message(gateway, MAX_EPOCH, src, "", -1.7976931348623157e308, MAX_EPOCH)) for src in sources)
    return MAX_PAYLOAD_BYTES - envelope
