"""Faults for tests and the demo: cut, degrade and restore an enterprise line; stop, resume and
freeze a DCS simulator; reboot a host. Each is recorded in the run state so `status` shows it.
"""

from __future__ import annotations

from hazmon.lab import net
from hazmon.lab.devices import control_path
from hazmon.lab.lab import Lab, LabError
from hazmon.lab.plan import Site, line_rate
from hazmon.lab.sim.common import control


def _site(lab: Lab, enterprise: str) -> Site:
    try:
        return lab.plan.site_for(enterprise)
    except KeyError as exc:
        raise LabError(str(exc.args[0])) from None


def _note(lab: Lab, key: str, value: str | None) -> None:
    st = lab.state()
    if value is None:
        st.faults.pop(key, None)
    else:
        st.faults[key] = value
    st.save()


def link_down(lab: Lab, enterprise: str) -> None:
    line = _site(lab, enterprise).line
    net.link_down(line.ns_b, line.if_b)
    net.link_down(line.ns_a, line.if_a)
    _note(lab, f"link:{line.name}", "down")


def link_up(lab: Lab, enterprise: str) -> None:
    site = _site(lab, enterprise)
    line = site.line
    net.link_up(line.ns_a, line.if_a)
    net.link_up(line.ns_b, line.if_b)
    # Bringing a device down drops the routes over it: put back those that use this line.
    for route in lab.plan.routes:
        if route.link == line.name:
            net.ensure_route(route)
    _note(lab, f"link:{line.name}", None)


def degrade(lab: Lab, enterprise: str, rate_mbps: float) -> None:
    if rate_mbps <= 0:
        raise LabError(f"degrade {enterprise}: RATE must be > 0 Mbit/s (use link-down to cut the line)")
    line = _site(lab, enterprise).line
    net.shape(line, rate_mbps)
    _note(lab, f"rate:{line.name}", f"{rate_mbps:g} Mbit/s (inventory {line.rate_mbps:g})")


def restore(lab: Lab, enterprise: str) -> None:
    """Undo link and rate faults: the line is up again at the inventory's figure."""
    site = _site(lab, enterprise)
    link_up(lab, enterprise)
    net.shape(site.line, line_rate(site.enterprise))
    _note(lab, f"rate:{site.line.name}", None)


def _dcs_sockets(lab: Lab, enterprise: str, source: str | None) -> list[tuple[str, str]]:
    site = _site(lab, enterprise)
    names = [s.name for s in site.enterprise.data_sources]
    if source is not None and source not in names:
        raise LabError(f"{enterprise}: no data source {source!r} (it has: {', '.join(names)})")
    return [
        (n, str(control_path(lab.run_dir, "dcs", site.enterprise.slug, n)))
        for n in names
        if source is None or n == source
    ]


def _send(sock: str, request: dict) -> dict:
    reply = control(sock, request)
    if not reply.get("ok"):
        raise LabError(f"{sock}: {request['cmd']} refused: {reply.get('error')}")
    return reply


def dcs_command(lab: Lab, enterprise: str, cmd: str, source: str | None = None) -> None:
    """stop or resume the data source(s) of an enterprise."""
    slug = _site(lab, enterprise).enterprise.slug
    for name, sock in _dcs_sockets(lab, enterprise, source):
        _send(sock, {"cmd": cmd})
        _note(lab, f"dcs:{slug}:{name}", "stopped" if cmd == "stop" else None)


def _source_of_tag(lab: Lab, enterprise: str, tag: str) -> str:
    site = _site(lab, enterprise)
    for src in site.enterprise.data_sources:
        if any(t.code == tag for t in src.tags):
            return src.name
    raise LabError(f"{enterprise}: no tag {tag!r} in any data source")


def dcs_tag(lab: Lab, enterprise: str, cmd: str, tag: str, value: float | None = None) -> dict:
    """freeze / unfreeze / out_of_range / set a tag, on the data source that serves it."""
    source = _source_of_tag(lab, enterprise, tag)
    ((_, sock),) = _dcs_sockets(lab, enterprise, source)
    request: dict = {"cmd": cmd, "tag": tag}
    if value is not None:
        request["value"] = value
    reply = _send(sock, request)
    slug = _site(lab, enterprise).enterprise.slug
    _note(lab, f"tag:{slug}:{tag}", None if cmd == "unfreeze" else cmd)
    return reply


def dcs_values(lab: Lab, enterprise: str, source: str) -> dict[str, float]:
    ((_, sock),) = _dcs_sockets(lab, enterprise, source)
    return _send(sock, {"cmd": "values"})["values"]
