"""The lab's connection settings come from one file (inventories/lab/group_vars/all/connection.yml):
the province play on another inventory and the INI inventories of the lab get the same, with the
run dir's key."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from hazmon.lab.hosts import LAB_CONNECTION, connection_vars, ini_vars


def test_the_variables_are_the_inventory_files_with_this_runs_key(tmp_path: Path) -> None:
    key = tmp_path / "ssh" / "id_ed25519"
    got = connection_vars(key)
    written = yaml.safe_load(LAB_CONNECTION.read_text(encoding="utf-8"))
    assert set(got) == set(written)
    assert got["ansible_ssh_private_key_file"] == str(key) != written["ansible_ssh_private_key_file"]
    assert got["ansible_host_key_checking"] == "false"  # a YAML bool, as Ansible's INI and -e read it
    assert got["ansible_ssh_common_args"] == written["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=no" in got["ansible_ssh_common_args"]


def test_ini_lines_split_back_to_the_same_values(tmp_path: Path) -> None:
    variables = connection_vars(tmp_path / "key with space")
    parsed = dict(shlex.split(line)[0].split("=", 1) for line in ini_vars(variables))
    assert parsed == variables
