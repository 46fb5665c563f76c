"""Integration: the uplink over TLS with the gateway's own user name and password (N8), against a
real Mosquitto that refuses anonymous clients; a wrong password delivers nothing and loses nothing."""

from __future__ import annotations

import datetime as dt
import getpass
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from collector_harness import GATEWAY, base_config
from collector_sims import RegisterMap, start_modbus_tcp, stop_server, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from hazmon import wire
from hazmon.collector.config import parse_config
from hazmon.testing.committer import Committer
from hazmon.testing.procs import free_port, stop, wait_port

pytestmark = pytest.mark.integration


def _pem(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def make_pki(d: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hazmon test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file = _pem(d / "ca.crt", ca.public_bytes(pem), 0o644)
    cert_file = _pem(d / "server.crt", cert.public_bytes(pem), 0o644)
    key_file = _pem(d / "server.key", key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return ca_file, cert_file, key_file


def test_tls_and_gateway_credentials(tmp_path, servers, run_collector):
    ca, cert, key = make_pki(tmp_path)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), GATEWAY, "gw-s3cret"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "tracker", "tr-s3cret"], check=True)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\n"
                    f"password_file {passwd}\nlistener {port} 127.0.0.1\n"
                    f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port)
    regs_server, regs_port = start_modbus_tcp(servers, RegisterMap([0x4148, 0, 0, 0]))
    got: list[wire.Batch] = []
    rx = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tracker")
    rx.username_pw_set("tracker", "tr-s3cret")
    rx.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    # The "tracker" confirms what it got (custody), so that the gateway's queue empties.
    committer = Committer(rx)

    def on_message(c, u, m) -> None:
        got.append(wire.decode(m.payload))
        committer.record(wire.parse_topic(m.topic)[0], got[-1])

    rx.on_connect = lambda c, u, f, rc, p: c.subscribe("hazmon/v1/#", qos=1)
    rx.on_message = on_message
    rx.connect("127.0.0.1", port)
    rx.loop_start()
    try:
        secret = tmp_path / "mqtt.password"
        secret.write_text("wrong\n")
        secret.chmod(0o600)
        source = {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": regs_port,
                  "tags": [{"code": "LT-101", "register": 0, "interval": 0.2}]}
        data = base_config(tmp_path, port, [source]).model_dump(mode="json", by_alias=True)
        data["mqtt"].update(tls=True, ca_file=str(ca), username=GATEWAY, password_file=str(secret))

        # Wrong password: refused by the broker, nothing delivered, the samples wait in the queue.
        bad = run_collector(parse_config(data))
        wait_for(lambda: bad.collector.queue.depth_samples >= 5, 10, "samples to queue up")
        wait_for(lambda: bad.collector.stats.uplink.refusals >= 1, 10, "the broker to refuse the gateway")
        assert bad.collector.stats.uplink.connected is False and not got
        bad.stop()

        # Right password over TLS: the queued samples and live ones arrive.
        secret.write_text("gw-s3cret\n")
        good = run_collector(parse_config(data))
        wait_for(lambda: good.collector.stats.uplink.connected, 15, "a TLS connection")
        wait_for(lambda: good.collector.queue.depth_samples == 0 and len(got) > 5, 15, "delivery")
        assert good.collector.stats.uplink.ack_subscribed and good.collector.stats.uplink.batches_confirmed > 5
        assert {b.gateway for b in got} == {GATEWAY}
        assert all(s.value == 12.5 for b in got for s in b.samples)
        good.stop()
    finally:
        committer.close()
        rx.disconnect()
        rx.loop_stop()
        stop_server(servers, regs_server)
        stop(broker)
