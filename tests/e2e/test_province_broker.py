"""Issue 5 acceptance 5 (broker half), on the lab: the province broker host, configured by the
province_broker role during `lab up`, lets a gateway publish only under its own enterprise's
topic and refuses a wrong password (N8: secure transmission; docs/wire.md topic rights).

Real MQTT (paho) from the province namespace's side of the lab network to the broker host at
the platform's MQTT address, with the gateways' and the tracker's vault credentials.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazmon import wire
from hazmon.inventory.ansible import PROVINCE_BROKER_HOST
from hazmon.inventory.secrets import TRACKER_MQTT_CREDENTIAL, TRACKER_MQTT_USER, mqtt_credential

pytestmark = pytest.mark.e2e

GATEWAY_A = "labe0001"
GATEWAY_B = "labe0002"  # another city (5105): A's rights reach neither B's code nor B's city
WAIT = 10.0


class Client:
    """One paho client, connected (or refused) synchronously, messages collected by topic."""

    def __init__(self, broker, user: str | None, password: str, protocol=mqtt.MQTTv311) -> None:
        self.connack = threading.Event()
        self.reason: str = ""
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, str] = {}  # mid -> PUBACK reason (MQTT 5)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-acl-{secrets.token_hex(4)}",
                                  protocol=protocol)
        if user is not None:  # None: no user name at all (anonymous)
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_publish = lambda c, u, mid, rc, props: self.acks.__setitem__(mid, str(rc))
        self.client.connect(str(broker.host), broker.port, keepalive=30)
        self.client.loop_start()
        assert self.connack.wait(WAIT), f"no CONNACK from {broker.host}:{broker.port}"

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.reason = str(reason)
        self.connack.set()

    @property
    def accepted(self) -> bool:
        return self.reason == "Success"

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT)
        return info.mid

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def clients(lab) -> Iterator:
    opened: list[Client] = []
    broker = lab.inventory.province.platform.mqtt

    def connect(user: str | None, password: str, protocol=mqtt.MQTTv311) -> Client:
        c = Client(broker, user, password, protocol)
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


def _ent(lab, slug):
    return lab.plan.site_for(slug).enterprise


def _wait(pred, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_broker_is_a_lab_host_at_the_platform_address(lab, ssh):
    host = lab.plan.hosts[PROVINCE_BROKER_HOST]
    assert str(host.address) == str(lab.inventory.province.platform.mqtt.host)
    done = ssh(PROVINCE_BROKER_HOST, "systemctl is-active mosquitto; hostname")
    assert done.stdout.split() == ["active", PROVINCE_BROKER_HOST], done.stdout + done.stderr


def test_gateway_can_publish_only_under_its_own_enterprise_topic(lab, vault, clients):
    a, b = _ent(lab, GATEWAY_A), _ent(lab, GATEWAY_B)
    source = f"acl-{secrets.token_hex(4)}"  # this test's own messages, apart from any real feed
    topic_a, topic_b = wire.topic(a.city, a.code, source), wire.topic(b.city, b.code, source)
    assert wire.parse_topic(topic_b)[1] == b.code and a.city != b.city

    tracker = clients(TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL])
    assert tracker.accepted, tracker.reason
    tracker.client.subscribe(f"{wire.TOPIC_ROOT}/+/+/{source}", qos=1)  # everything of this test
    time.sleep(0.5)  # SUBACK before anything is published

    gw_a = clients(a.code, vault[mqtt_credential(a)])
    assert gw_a.accepted, gw_a.reason
    gw_a.publish(topic_a, b"a-own-1")
    gw_a.publish(topic_b, b"a-as-b")  # A's credentials, B's topic: the ACL must drop it
    gw_a.publish(wire.topic(a.city, b.code, source), b"a-as-b-in-a-city")
    gw_a.publish(f"{wire.TOPIC_ROOT}/{a.city}/{source}", b"a-outside-its-code")
    gw_a.publish(topic_a, b"a-own-2")  # after the refused ones: once it is in, they had their chance
    # Positive control: B's topic does reach the tracker, with B's own credentials.
    gw_b = clients(b.code, vault[mqtt_credential(b)])
    assert gw_b.accepted, gw_b.reason
    gw_b.publish(topic_b, b"b-own")

    _wait(lambda: {p for _, p in tracker.messages} >= {b"a-own-1", b"a-own-2", b"b-own"}, "the allowed messages")
    time.sleep(1.0)  # anything else in flight would land now
    got = sorted(tracker.messages)
    assert got == sorted([(topic_a, b"a-own-1"), (topic_a, b"a-own-2"), (topic_b, b"b-own")]), got


def test_refusal_is_reported_to_an_mqtt5_gateway(lab, vault, clients):
    """MQTT 5 clients learn of the refusal (PUBACK 'Not authorized'); 3.1.1 ones are dropped silently."""
    a, b = _ent(lab, GATEWAY_A), _ent(lab, GATEWAY_B)
    source = f"acl-{secrets.token_hex(4)}"
    tracker = clients(TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL])
    tracker.client.subscribe(f"{wire.TOPIC_ROOT}/+/+/{source}", qos=1)  # else: "No matching subscribers"
    time.sleep(0.5)
    gw_a = clients(a.code, vault[mqtt_credential(a)], mqtt.MQTTv5)
    assert gw_a.accepted, gw_a.reason
    own = gw_a.publish(wire.topic(a.city, a.code, source), b"own")
    other = gw_a.publish(wire.topic(b.city, b.code, source), b"other")
    _wait(lambda: own in gw_a.acks and other in gw_a.acks, "both PUBACKs")
    assert gw_a.acks[own] == "Success"
    assert gw_a.acks[other] == "Not authorized"


def test_wrong_password_unknown_user_and_anonymous_are_refused(lab, vault, clients):
    a = _ent(lab, GATEWAY_A)
    assert clients(a.code, vault[mqtt_credential(a)]).accepted  # the right one works
    assert clients(a.code, vault[mqtt_credential(a)] + "x").reason == "Not authorized"
    # Another gateway's password is a wrong password too.
    assert clients(a.code, vault[mqtt_credential(_ent(lab, GATEWAY_B))]).reason == "Not authorized"
    assert clients("91510100MANOSUCH01", vault[mqtt_credential(a)]).reason == "Not authorized"
    assert clients(None, "").reason == "Not authorized"  # anonymous


def test_tracker_cannot_publish_data(lab, vault, clients):
    """The tracker writes only what the province committed (custody), never a gateway's data.
    One client: the broker binds the client id to the account, so a second tracker connection
    would take this one's place."""
    a = _ent(lab, GATEWAY_A)
    source = f"acl-{secrets.token_hex(4)}"
    tracker = clients(TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL], mqtt.MQTTv5)
    tracker.client.subscribe(f"{wire.TOPIC_ROOT}/+/+/{source}", qos=1)  # its own data would come back
    time.sleep(0.5)
    mid = tracker.publish(wire.topic(a.city, a.code, source), b"forged")
    _wait(lambda: mid in tracker.acks, "the PUBACK")
    assert tracker.acks[mid] == "Not authorized"
    time.sleep(0.5)
    assert tracker.messages == []


def test_province_play_reruns_with_no_change_and_shows_no_secret_at_vvv(lab, vault, tmp_path):
    """What `lab up` runs, run again verbosely: changed=0 (acceptance 2) and not one vault value,
    password or hash, in the output (acceptance 5)."""
    from hazmon.lab.province import run_province_play

    log = tmp_path / "province-vvv.log"
    result = run_province_play(lab.inventory_root, lab.ssh_key, log, "-vvv")
    assert result.recap[PROVINCE_BROKER_HOST]["changed"] == 0, result.recap
    assert result.recap[PROVINCE_BROKER_HOST]["failed"] == 0
    text = log.read_text(encoding="utf-8")
    # The -vvv run did reach the password task (its banner: Mitogen's strategy names no module file).
    assert "TASK [province_broker : Write the password file" in text
    leaked = sorted(name for name, value in vault.items() if value in text)
    assert leaked == [], f"vault values in the -vvv output: {leaked}"
