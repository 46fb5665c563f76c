"""No message exceeds wire.MAX_PAYLOAD_BYTES: the tracker and the broker refuse larger ones, so a
source of many tags with long codes has its tick split into several batches (consecutive seqs)."""

from __future__ import annotations

import pytest
from collector_harness import GATEWAY, base_config
from collector_sims import Broker, Receiver, RegisterMap, start_modbus_tcp, stop_server, wait_for

from hazmon import wire
from hazmon.collector.queue import DurableQueue, encode_samples, split_encoded
from hazmon.collector.wireformat import message, samples_budget

# Chinese tag names (位号 with a description) take 3 bytes a character in UTF-8.
LONG = "反应釜进料流量调节阀位号" * 8


def many(n: int) -> list[tuple[str, float, float]]:
    return [(f"{LONG}-{i:05d}", 1764323000.123456 + i * 1e-6, -12345.678901 + i) for i in range(n)]


def test_split_keeps_every_sample_in_order_within_the_limit():
    s = many(3000)
    assert len(encode_samples(s).encode()) > 3 * 100_000
    chunks = split_encoded(s, 100_000)
    assert len(chunks) >= 4
    assert all(len(payload.encode()) <= 100_000 for payload, _ in chunks)
    assert [x for _, part in chunks for x in part] == s
    for payload, part in chunks:
        assert payload == encode_samples(part), "each chunk is exactly the wire array of its samples"


def test_a_small_tick_is_one_batch():
    s = many(10)
    assert split_encoded(s, 100_000) == [(encode_samples(s), s)]


def test_put_splits_a_tick_that_one_message_could_not_hold(tmp_path):
    budget = samples_budget(GATEWAY, ["dcs"])
    q = DurableQueue(tmp_path / "q.db", max_samples=10**6, max_batch_bytes=budget)
    s = many(4000)
    put = q.put("dcs", s)
    assert put.batches >= 3 and put.seq == put.batches
    rows = q.fetch(0, None, 100)
    assert [r.seq for r in rows] == list(range(1, put.batches + 1))
    got = []
    for r in rows:
        payload = message(GATEWAY, r.seq, r.source, r.samples, 1764323000.25, q.epoch)
        assert len(payload) <= wire.MAX_PAYLOAD_BYTES
        got.extend((x.tag, x.ts, x.value) for x in wire.decode(payload).samples)
    assert got == s
    assert (q.depth_batches, q.depth_samples) == (put.batches, 4000)
    q.close()


def test_the_budget_leaves_room_for_the_widest_envelope():
    budget = samples_budget(GATEWAY, ["dcs", "a-much-longer-source-name"])
    widest = message(GATEWAY, wire.MAX_EPOCH, "a-much-longer-source-name", "[]", -1.7976931348623157e308,
                     wire.MAX_EPOCH)
    assert budget + len(widest) - 2 <= wire.MAX_PAYLOAD_BYTES
    assert budget > wire.MAX_PAYLOAD_BYTES - 512


@pytest.mark.integration
def test_a_source_of_many_long_tags_publishes_messages_within_the_limit(tmp_path, servers, run_collector):
    n = 2500
    server, port = start_modbus_tcp(servers, RegisterMap([7] * n))
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    try:
        tags = [{"code": f"{LONG}-{i:05d}", "register": i, "type": "uint16", "interval": 1.0} for i in range(n)]
        c = run_collector(base_config(tmp_path, broker.port, [
            {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout": 5,
             "tags": tags}])).collector
        wait_for(lambda: len({s.tag for _src, s in receiver.samples()}) == n, 60, "every tag")
        assert max(receiver.sizes) <= wire.MAX_PAYLOAD_BYTES, max(receiver.sizes)
        assert c.queue.last_seq > c.stats.sources["dcs"].polls, "a tick took more than one batch"
        assert not receiver.errors
    finally:
        receiver.close()
        stop_server(servers, server)
        broker.stop()
