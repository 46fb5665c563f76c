"""The province broker's accounts and topic rights, derived from the inventory model.

One account per data-acquisition gateway (N4: one per site; the MQTT user name is the enterprise
code, docs/wire.md) that may publish only under its own enterprise's topic and read only what the
province committed of its own batches (custody, `wire.ack_topic`), plus the province feed
tracker's account that may read everything under the data root and write the committed-seqs
messages. Enterprises in long-term shutdown (R4) are never rolled out, so they get no account.
The broker binds each connection's client id to its account (`use_username_as_clientid`), so
no account can take over another's session. Passwords are not here: each account
names the vault variable that holds its password (hazmon.inventory.secrets).

Used by the control-node action plugin plugins/action/hazmon_broker_accounts.py, which the
province_broker role renders the password file and the ACL from.
"""

from __future__ import annotations

from dataclasses import dataclass

from hazmon import wire
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Annotation, Enterprise
from hazmon.inventory.secrets import TRACKER_MQTT_CREDENTIAL, TRACKER_MQTT_USER, mqtt_credential

READ, WRITE = "read", "write"
# The largest MQTT packet the broker accepts: the wire's payload limit plus room for the fixed
# header, the topic and MQTT 5 properties. A larger one is refused at the broker and never reaches
# the tracker (which also refuses a payload over the limit).
MAX_PACKET_BYTES = wire.MAX_PAYLOAD_BYTES + 1024


@dataclass(frozen=True)
class Right:
    access: str  # READ | WRITE (Mosquitto ACL `topic read|write`)
    topic: str  # the topic filter it may use that way


@dataclass(frozen=True)
class BrokerAccount:
    user: str
    credential: str  # the vault variable holding its password
    rights: tuple[Right, ...]
    enterprise: str = ""  # the gateway's enterprise code ("" for the tracker)

    def as_dict(self) -> dict[str, object]:
        return {"user": self.user, "credential": self.credential, "enterprise": self.enterprise,
                "rights": [{"access": r.access, "topic": r.topic} for r in self.rights]}


def has_gateway_account(ent: Enterprise) -> bool:
    """A site whose data-acquisition gateway publishes to the province (R4: not long-term shutdown)."""
    return ent.devices.daq_gateway is not None and Annotation.LONG_TERM_SHUTDOWN not in ent.annotations


def gateway_account(ent: Enterprise) -> BrokerAccount:
    return BrokerAccount(
        user=ent.code,
        credential=mqtt_credential(ent),
        rights=(Right(WRITE, wire.enterprise_topic_filter(ent.city, ent.code)),
                Right(READ, wire.ack_topic(ent.city, ent.code))),
        enterprise=ent.code,
    )


def tracker_account() -> BrokerAccount:
    return BrokerAccount(TRACKER_MQTT_USER, TRACKER_MQTT_CREDENTIAL,
                         (Right(READ, f"{wire.TOPIC_ROOT}/#"), Right(WRITE, f"{wire.ACK_ROOT}/#")))


def broker_accounts(inv: Inventory) -> list[BrokerAccount]:
    """Every account of the province broker, gateways by enterprise code, then the tracker."""
    gateways = [gateway_account(e) for e in sorted(inv.enterprises, key=lambda e: e.code) if has_gateway_account(e)]
    return [*gateways, tracker_account()]
