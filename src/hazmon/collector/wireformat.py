"""Build a hazmon.wire v1 message around a queued batch without decoding and re-encoding it.

The queue stores each batch's "samples" array already in wire JSON; at publish time only the
envelope (gw, seq, src, sent) is added. This is what lets a one-hour backlog replay quickly.
tests/collector/test_wireformat.py checks that hazmon.wire.decode reads it back exactly.
"""

from __future__ import annotations

import json

from hazmon.wire import SCHEMA_VERSION


def message(gateway: str, seq: int, source: str, samples_json: str, sent: float) -> bytes:
    return (
        f'{{"v":{SCHEMA_VERSION},"gw":{json.dumps(gateway, ensure_ascii=False)},"seq":{int(seq)},'
        f'"src":{json.dumps(source, ensure_ascii=False)},"sent":{float(sent)!r},"samples":{samples_json}}}'
    ).encode()
