"""The province broker as the province_broker role configures it, on loopback (real Mosquitto).

- Identity: no account can take over the tracker's session or another gateway's connection
  (the role binds a connection's client id to its account).
- Limits: a packet over the wire's limit is refused at the broker.
- Custody: 300+ gateways keep publishing while the tracker is down and the broker crashes;
  nothing is lost, nothing counted twice (hazmon.testing.custody; `make bench` runs it with a
  10-minute outage and prints the figures).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazmon import wire
from hazmon.broker import MAX_PACKET_BYTES, has_gateway_account
from hazmon.inventory.secrets import TRACKER_MQTT_CREDENTIAL, TRACKER_MQTT_USER, ensure_lab_vault, mqtt_credential
from hazmon.inventory.validate import load_valid
from hazmon.testing import custody
from hazmon.testing.broker import RoleBroker, render

pytestmark = pytest.mark.integration
WAIT = 10.0


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return custody.synth_inventory(tmp_path_factory.mktemp("custody") / "inventory")


@pytest.fixture(scope="module")
def role_broker(province: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleBroker]:
    ensure_lab_vault(load_valid(province)[0])
    broker = RoleBroker(render(province, tmp_path_factory.mktemp("broker") / "etc"))
    broker.start()
    yield broker
    broker.stop()


class Client:
    """A paho client that records its connection's fate and what it receives."""

    def __init__(self, broker: RoleBroker, user: str, password: str, client_id: str, clean: bool = True) -> None:
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.reason = ""
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                                  protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: self.dropped.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(WAIT), f"{user}: no CONNACK"

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.reason = str(reason)
        self.connected.set()

    def subscribe(self, topic: str) -> None:
        info = threading.Event()
        self.client.on_subscribe = lambda *a: info.set()
        self.client.subscribe(topic, qos=1)
        assert info.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator:
    opened: list[Client] = []

    def connect(*args, **kwargs) -> Client:
        c = Client(*args, **kwargs)
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


def _gateways(province: Path, n: int) -> list[tuple[str, str, str]]:
    """(code, city, password) of n gateways with a broker account."""
    inv, _ = load_valid(province)
    vault = ensure_lab_vault(inv)
    ents = [e for e in sorted(inv.enterprises, key=lambda e: e.code) if has_gateway_account(e)]
    return [(e.code, e.city, vault[mqtt_credential(e)]) for e in ents[:n]]


def _wait(pred, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_no_gateway_account_can_take_over_the_trackers_session(province, role_broker, clients):
    vault = ensure_lab_vault(load_valid(province)[0])
    (a_code, a_city, a_pw), = _gateways(province, 1)
    source = f"id-{secrets.token_hex(3)}"
    tracker = clients(role_broker, TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL], "hazmon-tracker", clean=False)
    tracker.subscribe(f"{wire.TOPIC_ROOT}/+/+/{source}")
    # Gateway A asks for the tracker's client id with a clean session: before the role bound client
    # ids to accounts, this disconnected the tracker and destroyed its session and queue.
    intruder = clients(role_broker, a_code, a_pw, "hazmon-tracker", clean=True)
    assert intruder.reason == "Success"
    time.sleep(1.0)
    assert not tracker.dropped.is_set(), "a gateway account disconnected the tracker"
    intruder.publish(wire.topic(a_city, a_code, source), b"live").wait_for_publish(WAIT)
    _wait(lambda: (wire.topic(a_city, a_code, source), b"live") in tracker.messages, "the tracker still receiving")

    # The tracker's persistent session survives an intruder while the tracker is away: what is
    # published meanwhile is queued for it, and delivered when it returns.
    tracker.close()
    queued = clients(role_broker, a_code, a_pw, "hazmon-tracker", clean=True)
    queued.publish(wire.topic(a_city, a_code, source), b"while-away").wait_for_publish(WAIT)
    back = clients(role_broker, TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL], "hazmon-tracker", clean=False)
    _wait(lambda: (wire.topic(a_city, a_code, source), b"while-away") in back.messages, "the queued message")


def test_no_gateway_account_can_disconnect_another_gateway(province, role_broker, clients):
    (a_code, _a_city, a_pw), (b_code, b_city, b_pw) = _gateways(province, 2)
    b = clients(role_broker, b_code, b_pw, b_code)
    intruder = clients(role_broker, a_code, a_pw, b_code)  # A with B's client id
    assert intruder.reason == "Success"
    time.sleep(1.0)
    assert not b.dropped.is_set(), "gateway A's account disconnected gateway B"
    info = b.publish(wire.topic(b_city, b_code, "dcs"), b"still-here")
    info.wait_for_publish(WAIT)
    assert info.is_published()


def test_a_gateway_reads_only_its_own_committed_seqs(province, role_broker, clients):
    vault = ensure_lab_vault(load_valid(province)[0])
    (a_code, a_city, a_pw), (b_code, b_city, b_pw) = _gateways(province, 2)
    a = clients(role_broker, a_code, a_pw, a_code)
    a.subscribe(f"{wire.ACK_ROOT}/#")
    tracker = clients(role_broker, TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL], "hazmon-tracker")
    for code, city in ((a_code, a_city), (b_code, b_city)):
        msg = wire.Committed(code, 1, ((1, 5),), time.time()).encode()
        tracker.client.publish(wire.ack_topic(city, code), msg, qos=1).wait_for_publish(WAIT)
    _wait(lambda: a.messages, "A's own committed seqs")
    time.sleep(0.5)
    assert [t for t, _ in a.messages] == [wire.ack_topic(a_city, a_code)]
    # A gateway cannot forge what the province committed, not even for itself.
    b = clients(role_broker, b_code, b_pw, b_code)
    b.publish(wire.ack_topic(a_city, a_code), wire.Committed(a_code, 1, ((1, 10**6),)).encode()).wait_for_publish(WAIT)
    time.sleep(0.5)
    assert len(a.messages) == 1


def test_a_refused_publish_drops_the_message_not_the_gateway(province, role_broker, clients):
    """The ACL drops a gateway's publish under another's topic; the gateway stays connected and its
    own data still flows (Mosquitto 2.0.11 cut the connection when max_queued_messages was 0)."""
    vault = ensure_lab_vault(load_valid(province)[0])
    (a_code, a_city, a_pw), = _gateways(province, 1)
    b_code, b_city = next((c, city) for c, city, _ in _gateways(province, 60) if city != a_city)
    source = f"acl-{secrets.token_hex(3)}"
    tracker = clients(role_broker, TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL], "hazmon-tracker")
    tracker.subscribe(f"{wire.TOPIC_ROOT}/+/+/{source}")
    gw = clients(role_broker, a_code, a_pw, a_code)
    gw.publish(wire.topic(b_city, b_code, source), b"as-b").wait_for_publish(WAIT)
    time.sleep(0.5)
    assert not gw.dropped.is_set(), "the broker cut a gateway for one refused publish"
    gw.publish(wire.topic(a_city, a_code, source), b"own").wait_for_publish(WAIT)
    _wait(lambda: tracker.messages, "the gateway's own message")
    assert tracker.messages == [(wire.topic(a_city, a_code, source), b"own")]


def test_a_packet_over_the_wire_limit_is_refused_at_the_broker(province, role_broker, clients):
    vault = ensure_lab_vault(load_valid(province)[0])
    (a_code, a_city, a_pw), = _gateways(province, 1)
    assert role_broker.conf_value("max_packet_size") == str(MAX_PACKET_BYTES)
    tracker = clients(role_broker, TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL], "hazmon-tracker")
    source = f"big-{secrets.token_hex(3)}"
    tracker.subscribe(f"{wire.TOPIC_ROOT}/+/+/{source}")
    gw = clients(role_broker, a_code, a_pw, a_code)
    gw.publish(wire.topic(a_city, a_code, source), b"x" * (MAX_PACKET_BYTES + 1))
    _wait(gw.dropped.is_set, "the broker to drop the oversized publisher")
    ok = clients(role_broker, a_code, a_pw, a_code)
    ok.publish(wire.topic(a_city, a_code, source), b"x" * (wire.MAX_PAYLOAD_BYTES - 1)).wait_for_publish(WAIT)
    _wait(lambda: tracker.messages, "the largest allowed payload")
    assert [len(p) for _, p in tracker.messages] == [wire.MAX_PAYLOAD_BYTES - 1]


def test_custody_no_sample_lost_or_counted_twice_across_tracker_outage_and_broker_crash(province, tmp_path):
    """Every gateway of a 360-enterprise province publishes at its tags' own rates; the tracker is
    killed for a minute, the broker is killed and restarted from its snapshot in between."""
    timing = custody.Timing(warmup=15, outage=60, after=15, broker_crash_at=0.6, drain_timeout=300)
    result = custody.run(province, tmp_path / "run", gateways=300, timing=timing, log=lambda m: None)
    summary = (f"{result.gateways} gateways, {result.enqueued_samples} samples enqueued, "
               f"{result.accepted_samples} accepted, {result.duplicate_samples} duplicates dropped, "
               f"{result.resent_batches} batches re-sent, broker peak {result.broker_peak_rss_bytes >> 20} MiB")
    assert result.gateways >= 300
    assert result.broker_crashes == 1
    assert result.problems == [], summary + "\n" + "\n".join(result.problems[:20])
    assert result.accepted_samples == result.enqueued_samples > 0, summary
