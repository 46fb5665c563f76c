"""Gates of the NVR (role nvr): registered at the platform's registrar, online, every channel (V2)."""

from __future__ import annotations

from hazmon.devices import gb28181
from hazmon.devices.site import find_nvr

ROLES = ("nvr",)


def test_registered_and_online_with_every_channel(target, inventory, enterprise, platform, wait):
    nvr = find_nvr(enterprise, target.device)
    want = gb28181.target(inventory, enterprise, nvr)
    assert want.status_url, "the inventory gives no registrar status URL (province.platform.sip.status_url)"

    def registered() -> None:
        problem = gb28181.registration_problem(gb28181.read_registrar(want.status_url), want.device_id,
                                               want.channel_ids)
        assert problem is None, f"NVR {nvr.name} ({want.device_id}): {problem}"

    wait(registered, "registrar")
