# hazmon inventory plugin: a thin shell; the logic is hazmon.inventory.ansible (tested there).
from __future__ import annotations

DOCUMENTATION = r"""
name: hazmon
short_description: hazmon's enterprises, gateways, AI boxes, NVRs and switches as an Ansible inventory
description:
  - Loads and validates a hazmon inventory folder (province.yml, cities/) through the hazmon model,
    refuses it when validation finds an error, and adds one host per access gateway,
    data-acquisition gateway, AI box, NVR and monitoring switch, grouped by city, batch, programme,
    device role, lifecycle state and enterprise.
  - Caching (C(cache=true) with a persistent cache plugin such as ansible.builtin.jsonfile) stores the
    derived hosts together with a fingerprint of the inventory files' (path, mtime, size); a cached
    result is used only while the fingerprint is unchanged, so an edited inventory is never served stale.
  - The source file must be named C(hazmon.yml) or C(hazmon.yaml).
extends_documentation_fragment:
  - inventory_cache
options:
  plugin:
    description: Marks this file as a source for the hazmon plugin.
    required: true
    choices: ['hazmon']
  root:
    description:
      - The hazmon inventory folder, relative to this source file's folder.
      - Defaults to the source file's own folder.
    type: str
    default: ''
"""

EXAMPLES = r"""
# inventories/lab/hazmon.yml
plugin: hazmon
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_timeout: 0
"""

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable  # noqa: E402
from ansible.template import trust_as_template  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

try:
    from hazmon.inventory.ansible import (
        FORMAT,
        TEMPLATED_VARS,
        AnsibleInventory,
        HostNameClash,
        build,
        fingerprint,
    )
    from hazmon.inventory.findings import InventoryError
    from hazmon.inventory.loader import gc_paused
    from hazmon.inventory.validate import load_valid
except ImportError as exc:  # pragma: no cover - reported when the plugin is used
    HAZMON_IMPORT_ERROR: ImportError | None = exc
else:
    HAZMON_IMPORT_ERROR = None


class InventoryModule(BaseInventoryPlugin, Cacheable):
    NAME = "hazmon"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and os.path.basename(path) in ("hazmon.yml", "hazmon.yaml")

    def parse(self, inventory, loader, path, cache=True):  # type: ignore[no-untyped-def]
        super().parse(inventory, loader, path, cache)
        if HAZMON_IMPORT_ERROR is not None:
            raise AnsibleParserError(f"the hazmon package is not importable here: {HAZMON_IMPORT_ERROR}")
        self._read_config_data(path)
        source = Path(path).resolve()
        root = (source.parent / (self.get_option("root") or "")).resolve()

        # Cacheable, as Ansible's own plugins do it; entries carry a fingerprint of the files.
        use_cache = bool(self.get_option("cache"))
        cache_key = self.get_cache_key(str(source))
        stamp = fingerprint(root, source) if use_cache else ""
        data = None
        if use_cache and cache:
            try:
                entry = self._cache[cache_key]
            except KeyError:
                entry = None
            if isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("fingerprint") == stamp:
                data = entry["inventory"]
                Display().vvv(f"hazmon: cached inventory of {root} used (files unchanged)")
        with gc_paused():
            if data is None:
                Display().vvv(f"hazmon: validating {root}")
                data = self._derive(root)
                if use_cache:
                    self._cache[cache_key] = {"format": FORMAT, "fingerprint": stamp, "inventory": data}
            self._populate(AnsibleInventory.from_dict(data))

    @staticmethod
    def _derive(root: Path) -> dict:
        try:
            inv, readiness = load_valid(root)
            return build(inv, readiness).as_dict()
        except InventoryError as exc:
            # Every error finding, with its file, line, field and rule ID (e.g. N2, GB28181).
            raise AnsibleParserError(f"hazmon inventory {root} is invalid: {exc}") from exc
        except HostNameClash as exc:
            raise AnsibleParserError(f"hazmon inventory {root}: {exc}") from exc

    def _populate(self, data: AnsibleInventory) -> None:
        inventory = self.inventory
        for group in data.groups:
            inventory.add_group(group)
        for group, gvars in data.group_vars.items():
            inventory.add_group(group)
            for name, value in gvars.items():
                inventory.set_variable(group, name, value)
        for host, hvars in data.hosts.items():
            inventory.add_host(host)
            for name, value in hvars.items():
                # Only our own fixed templates are trusted; inventory text (names...) never is.
                inventory.set_variable(host, name, trust_as_template(value) if name in TEMPLATED_VARS else value)
        for group, hosts in data.groups.items():
            for host in hosts:
                inventory.add_child(group, host)
