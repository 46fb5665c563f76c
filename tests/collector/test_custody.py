"""Custody (docs/wire.md): the gateway deletes a batch only when the province has committed it.

Unit tests of the re-send rule (custody.Custody), then the collector against a real Mosquitto on
loopback with a small in-test "tracker" (hazmon.testing.committer.Committer, inside the Receiver)
that publishes, retained, the seqs it received as wire.Committed messages.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from collector_harness import CITY, GATEWAY, base_config
from collector_sims import Broker, Receiver, RegisterMap, metric, scrape, start_modbus_tcp, stop_server, wait_for

from hazmon import wire
from hazmon.collector.custody import Custody

# ------------------------------------------------------------------ unit: the re-send rule


def test_nothing_is_due_while_nothing_is_confirmed():
    c = Custody(slack=2, resend_after=1.0)
    for seq in range(1, 101):
        c.delivered(seq, now=0.0)
    assert c.due(now=1e6) == [], "a tracker that is down confirms nothing: no duplicate flood"
    assert len(c) == 100


def test_a_batch_is_due_when_later_ones_beyond_the_slack_are_confirmed_and_its_puback_is_old():
    c = Custody(slack=2, resend_after=10.0)
    for seq in range(1, 11):
        c.delivered(seq, now=float(seq))
    assert c.confirmed([1, 2, 4, 5, 6]) == 5  # 3 is missing; 6 has ordinal 6
    assert c.due(now=12.0) == [], "3's PUBACK (t=3) is not yet resend_after old"
    assert c.due(now=13.0) == [3]
    assert 3 not in c and len(c) == 4  # 7..10 still await the province
    c2 = Custody(slack=2, resend_after=0.0)
    for seq in range(1, 11):
        c2.delivered(seq, now=0.0)
    c2.confirmed([4])  # ordinal 4 - slack 2: only ordinals 1 and below the limit 2
    assert c2.due(now=1.0) == [1]
    c2.confirmed([9])
    assert c2.due(now=1.0) == [2, 3, 5, 6], "everything delivered before 9 beyond the slack, but 4"


def test_a_resent_batch_takes_its_new_place_in_the_order():
    c = Custody(slack=0, resend_after=0.0)
    for seq in (1, 2, 3):
        c.delivered(seq, now=0.0)
    c.confirmed([3])
    assert c.due(now=1.0) == [1, 2]
    c.delivered(1, now=2.0)  # re-sent and PUBACKed again: ordinal 4
    assert c.due(now=5.0) == []
    c.delivered(4, now=2.0)
    c.confirmed([4])
    assert c.due(now=5.0) == [1]


# ------------------------------------------------------------------ integration

INTERVAL = 0.05


def counter_source(port: int) -> dict:
    return {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
            "tags": [{"code": "CNT", "register": 0, "type": "uint32", "interval": INTERVAL}]}


@pytest.fixture
def plant(tmp_path, servers):
    """A counting slave, a broker and a receiver that commits what it gets (paused at first)."""
    regs = RegisterMap([0, 0, 0, 0], counter_at=0)
    server, port = start_modbus_tcp(servers, regs)
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    assert receiver.committer is not None
    try:
        yield port, broker, receiver
    finally:
        receiver.close()
        stop_server(servers, server)
        broker.stop()


def config(tmp_path, port: int, broker: Broker, **queue):
    # A small in-flight window: the re-send rule's slack is one window.
    return base_config(tmp_path, broker.port, [counter_source(port)], mqtt={"max_inflight": 5},
                       **{"replay_bytes_per_second": 1e9, "flush_timeout": 1, **queue})


def queued(c) -> list[int]:
    return [r.seq for r in c.queue.fetch(0, None, 10**6)]


def publish_ack(receiver: Receiver, payload: bytes, retain: bool = False) -> None:
    info = receiver.client.publish(wire.ack_topic(CITY, GATEWAY), payload, qos=1, retain=retain)
    info.wait_for_publish(10)


def test_nothing_is_deleted_on_puback_alone(tmp_path, plant, run_collector):
    port, broker, receiver = plant
    receiver.committer.paused.set()  # the province commits nothing
    c = run_collector(config(tmp_path, port, broker)).collector
    wait_for(lambda: c.stats.uplink.batches_published >= 30, 30, "30 PUBACKs")
    seqs = queued(c)
    assert seqs[:30] == list(range(1, 31)), "a PUBACKed batch stays queued until the province commits it"
    assert c.stats.uplink.unconfirmed >= 30 and c.stats.uplink.batches_confirmed == 0
    assert c.stats.uplink.ack_subscribed


def test_a_committed_message_deletes_exactly_its_ranges(tmp_path, plant, run_collector):
    port, broker, receiver = plant
    receiver.committer.paused.set()
    c = run_collector(config(tmp_path, port, broker, resend_after=600)).collector
    wait_for(lambda: c.stats.uplink.batches_published >= 20, 30, "20 PUBACKs")
    publish_ack(receiver, wire.Committed(GATEWAY, c.queue.epoch, ((2, 4), (7, 7)), 1234.5).encode())
    wait_for(lambda: c.stats.uplink.batches_confirmed == 4, 20, "the committed ranges to be deleted")
    seqs = queued(c)
    assert {1, 5, 6, 8, 9, 10} <= set(seqs) and not {2, 3, 4, 7} & set(seqs)
    assert c.stats.uplink.samples_confirmed == 4  # one sample per batch
    assert c.stats.uplink.last_committed == 1234.5
    text = scrape(c.metrics_port)
    assert metric(text, "hazmon_collector_batches_confirmed_total") == 4
    assert metric(text, "hazmon_collector_last_committed_timestamp_seconds") == 1234.5
    assert metric(text, "hazmon_collector_queue_unconfirmed_batches") >= 16
    # The province catches up: everything it got is committed and deleted.
    receiver.committer.paused.clear()
    upto = c.queue.last_seq
    wait_for(lambda: not c.queue.fetch(0, upto, 1), 30, f"every batch up to {upto} to be confirmed")
    assert c.stats.uplink.resent_batches == 0


def test_a_batch_lost_after_its_puback_is_sent_again_and_then_confirmed(tmp_path, plant, run_collector):
    port, broker, receiver = plant
    receiver.committer.lose = {10, 11}  # the broker "lost" these after their PUBACK
    c = run_collector(config(tmp_path, port, broker, resend_after=1.0)).collector
    wait_for(lambda: receiver.copies_of[10] >= 2 and receiver.copies_of[11] >= 2, 30, "10 and 11 sent again")
    wait_for(lambda: not c.queue.fetch_seqs([10, 11]), 20, "10 and 11 confirmed after their re-send")
    assert receiver.committer.lost == {10, 11}
    assert c.stats.uplink.resent_batches >= 2
    assert {s for s, n in receiver.copies_of.items() if n > 1} == {10, 11}, "only the lost ones went twice"
    upto = c.queue.last_seq
    wait_for(lambda: not c.queue.fetch(0, upto, 1), 30, "the queue to be confirmed")


def test_nothing_is_resent_while_the_province_confirms_nothing(tmp_path, plant, run_collector):
    port, broker, receiver = plant
    receiver.committer.paused.set()  # a tracker that is down: nothing is confirmed
    c = run_collector(config(tmp_path, port, broker, resend_after=0.5)).collector
    wait_for(lambda: c.stats.uplink.batches_published >= 20, 30, "20 PUBACKs")
    time.sleep(3)  # six times resend_after
    assert c.stats.uplink.resent_batches == 0
    assert max(receiver.copies_of.values()) == 1, "no duplicate flood"
    assert c.stats.uplink.unconfirmed >= 20
    receiver.committer.paused.clear()  # the tracker is back and drains in order
    upto = c.queue.last_seq
    wait_for(lambda: not c.queue.fetch(0, upto, 1), 30, "the queue to be confirmed")
    assert c.stats.uplink.resent_batches == 0


def test_after_a_restart_the_retained_message_deletes_what_was_committed_and_the_rest_is_replayed(
        tmp_path, plant, run_collector):
    port, broker, receiver = plant
    cfg = config(tmp_path, port, broker, resend_after=600)
    first = run_collector(cfg)
    c = first.collector
    wait_for(lambda: c.stats.uplink.batches_confirmed >= 10, 30, "a first round of commits")
    receiver.committer.paused.set()
    lose = c.queue.last_seq + 5
    receiver.committer.lose = {lose, lose + 1}
    wait_for(lambda: c.stats.uplink.batches_published >= lose + 15, 30, "more deliveries")
    first.stop()
    with sqlite3.connect(cfg.queue.path) as db:
        left = [seq for (seq,) in db.execute("SELECT seq FROM batches ORDER BY seq")]
    db.close()
    received = set(receiver.copies_of)
    assert {lose, lose + 1} <= set(left) and len(left) > 10, "delivered, unconfirmed rows stay queued"
    # While the gateway is down the tracker commits what it got; the message is retained.
    receiver.committer.paused.clear()
    published = receiver.committer.published
    wait_for(lambda: receiver.committer.published > published, 10, "the tracker's retained message")

    second = run_collector(cfg).collector
    assert second.queue.epoch == c.queue.epoch
    wait_for(lambda: not second.queue.fetch_seqs(left), 30, "every row left behind to be confirmed")
    for seq in left:
        if seq in received and seq not in (lose, lose + 1):
            assert receiver.copies_of[seq] == 1, f"seq {seq} was committed: the retained message deletes it"
    assert receiver.copies_of[lose] == 2 and receiver.copies_of[lose + 1] == 2, "not committed: replayed"
    assert second.stats.uplink.resent_batches == 0


def test_messages_for_another_epoch_or_gateway_are_ignored_and_counted(tmp_path, plant, run_collector):
    port, broker, receiver = plant
    receiver.committer.paused.set()
    c = run_collector(config(tmp_path, port, broker, resend_after=600)).collector
    wait_for(lambda: c.stats.uplink.batches_published >= 10 and c.stats.uplink.ack_subscribed, 30, "deliveries")
    everything = ((1, wire.MAX_EPOCH),)
    other_epoch = c.queue.epoch % wire.MAX_EPOCH + 1
    publish_ack(receiver, wire.Committed(GATEWAY, other_epoch, everything, 1.0).encode())
    publish_ack(receiver, wire.Committed("91510100MALABE0002", c.queue.epoch, everything, 1.0).encode())
    publish_ack(receiver, b'{"v": 1, "gw": "' + GATEWAY.encode() + b'", "ep": "x"}')
    publish_ack(receiver, b"\xff" * 10)
    ignored = c.stats.uplink.committed_ignored
    wait_for(lambda: sum(ignored.values()) == 4, 20, "four ignored messages")
    assert dict(ignored) == {"other_epoch": 1, "other_gateway": 1, "malformed": 2}
    assert c.stats.uplink.batches_confirmed == 0 and queued(c)[:10] == list(range(1, 11))
    assert c.stats.uplink.last_committed is None
    text = scrape(c.metrics_port)
    for reason, n in (("other_epoch", 1), ("other_gateway", 1), ("malformed", 2)):
        assert metric(text, "hazmon_collector_committed_ignored_total", f'reason="{reason}"') == n


def test_delete_on_puback_keeps_the_old_behaviour_for_a_plain_receiver(tmp_path, servers, run_collector):
    regs = RegisterMap([0, 0, 0, 0], counter_at=0)
    server, port = start_modbus_tcp(servers, regs)
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port, commit=False)
    try:
        c = run_collector(config(tmp_path, port, broker, delete_on="puback")).collector
        wait_for(lambda: c.stats.uplink.batches_published >= 20, 30, "20 PUBACKs")
        upto = c.queue.last_seq
        wait_for(lambda: not c.queue.fetch(0, upto, 1), 20, "PUBACKed batches to be deleted")
        assert not c.stats.uplink.ack_subscribed and c.stats.uplink.batches_confirmed == 0
    finally:
        receiver.close()
        stop_server(servers, server)
        broker.stop()
