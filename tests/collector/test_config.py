"""Unit: the config file (clear errors), rendering from the lab inventory, secrets, the CLI's exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from collector_sims import env_without_proxy

from hazmon.collector.config import ConfigError, dump_yaml, load_config, parse_config, read_secret
from hazmon.collector.main import main
from hazmon.collector.render import render_config
from hazmon.inventory.validate import load_valid

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


def good() -> dict:
    return {
        "gateway": "91510100MALABE0001", "city": "5101",
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "sources": [{"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": 502,
                     "tags": [{"code": "LT-101", "register": 0}]}],
    }


def test_render_from_lab_inventory_round_trips(tmp_path):
    inv, _ = load_valid(LAB)
    cfg = render_config(inv, "91510100MALABE0001")
    assert cfg.gateway == "91510100MALABE0001" and cfg.city == "5101"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username) == ("198.18.0.10", 1883, "91510100MALABE0001")
    # Credentials are files the role renders from the vault, never values in the config.
    text = dump_yaml(cfg)
    assert "password_file: /etc/hazmon-collector/secrets/mqtt.password" in text
    assert not [line for line in text.splitlines() if line.strip().startswith("password:")]
    (dcs,) = cfg.sources
    ft = next(t for t in dcs.tags if t.code == "FT-101")
    assert (ft.reg, ft.type, ft.word_order, ft.scale) == (4, "uint32", "little", 0.01)
    assert next(t for t in dcs.tags if t.code == "GT-201").function == "input"
    out = tmp_path / "c.yml"
    out.write_text(dump_yaml(cfg), encoding="utf-8")
    assert load_config(out) == cfg


def test_unknown_enterprise_is_refused():
    inv, _ = load_valid(LAB)
    with pytest.raises(ConfigError, match="no enterprise"):
        render_config(inv, "nope")


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        (lambda d: d["mqtt"].pop("host"), "mqtt.host", "Field required"),
        (lambda d: d.update(gateway="bad"), "gateway", "pattern"),
        (lambda d: d["sources"][0].pop("port"), "sources.0", "D1c"),
        (lambda d: d["sources"][0]["tags"][0].update(type="int64"), "sources.0.tags.0.type", "int16"),
        (lambda d: d["sources"][0]["tags"][0].update(register=70000), "sources.0.tags.0.register", "65535"),
        (lambda d: d["sources"][0]["tags"][0].update(regster=1), "sources.0.tags.0.regster", "Extra"),
        (lambda d: d["sources"].append(dict(d["sources"][0])), "(top level)", "unique"),
        (lambda d: d["mqtt"].update(username="gw"), "mqtt", "password_file"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, patch, field, words):
    data = good()
    patch(data)
    file = tmp_path / "collector.yml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        load_config(file)
    msg = str(exc.value)
    assert str(file) in msg and f"field {field}:" in msg and words in msg


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("gateway: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{bad}: not valid YAML"):
        load_config(bad)
    parse_config(good())  # and the good one passes


def test_secret_files_must_not_be_world_readable(tmp_path):
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="0644"):
        read_secret(secret, "mqtt.password_file")
    secret.chmod(0o600)
    assert read_secret(secret, "mqtt.password_file") == "s3cret"


def test_cli_bad_config_exits_2_with_message(tmp_path, capsys):
    data = good()
    data["sources"][0]["tags"][0]["type"] = "int64"
    file = tmp_path / "collector.yml"
    file.write_text(yaml.safe_dump(data))
    assert main(["--config", str(file)]) == 2
    err = capsys.readouterr().err
    assert str(file) in err and "sources.0.tags.0.type" in err
    file.write_text(yaml.safe_dump(good()))
    assert main(["--config", str(file), "--check"]) == 0


def test_cli_render(capsys):
    assert main(["--render", "labe0001", "--inventory", str(LAB)]) == 0
    assert "gateway: 91510100MALABE0001" in capsys.readouterr().out


def test_sigterm_is_a_clean_stop(tmp_path):
    """Under systemd: SIGTERM ends with exit 0 even while the broker is unreachable."""
    data = good()
    data["queue"] = {"path": str(tmp_path / "q.db"), "flush_timeout": 1}
    data["metrics"] = {"port": 0}
    data["mqtt"]["port"] = 1  # nothing listens: the uplink keeps retrying
    file = tmp_path / "collector.yml"
    file.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "hazmon.collector.main", "--config", str(file)],
                            stderr=subprocess.PIPE, text=True, env=env_without_proxy())
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "gateway 91510100MALABE0001:" in line:  # logged once the SIGTERM handler is in place
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Not a fixed sleep: a loaded machine may take longer than that to import and start.
        assert started.wait(60), "".join(lines)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0, "".join(lines)
        reader.join(10)
        assert "stopped" in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
