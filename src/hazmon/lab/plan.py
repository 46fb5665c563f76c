"""What the lab is, computed from the inventory alone: namespaces, links, routes, hosts, devices.

Pure data (no side effects) so that it can be unit-tested and so that `up`, `down`, `status`
and the faults all agree on names. Every address is checked to lie in 198.18.0.0/15: the lab
never puts any other address on an interface or a route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_network

from hazmon.inventory.ansible import PROVINCE_BROKER_HOST, ROLE_PROVINCE_BROKER
from hazmon.inventory.ansible import host_name as ansible_host_name
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Annotation, DataSource, Enterprise, Protocol

LAB_NET = IPv4Network("198.18.0.0/15")
# Point-to-point link subnets (/30 each) come from here, away from the province services (198.18.0.x).
LINK_POOL = IPv4Network("198.18.64.0/18")
PROVINCE_ROUTER = IPv4Address("198.18.0.1")  # the province namespace's own address; its iperf3 listens here
NS_PREFIX = "hzl-"
ROOT_IF = "hzl-root"  # the only interface the lab puts in the root namespace
IPERF_PORT = 5201


class PlanError(ValueError):
    """The inventory cannot be laid out as a lab (names the enterprise/field and the rule)."""


def lab_address(addr: IPv4Address | str, what: str) -> IPv4Address:
    a = IPv4Address(str(addr))
    if a not in LAB_NET:
        raise PlanError(f"{what}: {a} is outside 198.18.0.0/15; the lab uses no other addresses (LAB.md)")
    return a


@dataclass(frozen=True)
class Link:
    """A veth pair between two namespaces; `a` is the upstream end (towards the province)."""

    name: str  # stable handle used by faults and status
    ns_a: str
    if_a: str
    ns_b: str
    if_b: str
    subnet: IPv4Network
    rate_mbps: float | None  # None = not shaped (management link, LAN)

    @property
    def addr_a(self) -> IPv4Address:
        return self.subnet.network_address + 1

    @property
    def addr_b(self) -> IPv4Address:
        return self.subnet.network_address + 2


@dataclass(frozen=True)
class Route:
    ns: str  # "" = the root namespace
    dest: IPv4Network
    via: IPv4Address
    dev: str
    link: str  # the Link it goes over (re-applied when that link comes back up)


@dataclass(frozen=True)
class Host:
    """A booted systemd host: a gateway or AI box of an enterprise, or a province host (broker)."""

    name: str
    role: str  # access_gateway | daq_gateway | ai_box | province_broker
    enterprise: str  # enterprise code ("" for a province host)
    site_ns: str  # the namespace its veth's other end is in (the site's, or the province's)
    ns: str
    address: IPv4Address
    prefix: int
    gateway: IPv4Address
    site_if: str  # its veth end in site_ns (enslaved to the site's LAN bridge unless point_to_point)
    serial_source: str | None = None  # a modbus_rtu data source whose tty is bound in as /dev/ttyS1
    # A province host sits on its own /32 (no LAN): `default via <gateway> onlink` on its side,
    # a /32 route to it on the province's side.
    point_to_point: bool = False


@dataclass(frozen=True)
class Site:
    enterprise: Enterprise
    ns: str
    lan: IPv4Network
    gateway: IPv4Address  # the site router's LAN address
    device_addresses: tuple[IPv4Address, ...]  # simulators listen on these (bridge secondaries)
    line: Link
    upstream_ns: str  # city or parent-company namespace


@dataclass(frozen=True)
class CityNode:
    code: str
    ns: str
    uplink: Link

    @property
    def iperf_address(self) -> IPv4Address:
        return self.uplink.addr_b


@dataclass(frozen=True)
class ParentNode:
    name: str  # the parent company's name (Route.parent_company)
    ns: str
    uplink: Link

    @property
    def iperf_address(self) -> IPv4Address:
        return self.uplink.addr_b


@dataclass
class LabPlan:
    province_ns: str
    service_addresses: tuple[IPv4Address, ...]
    root_link: Link
    cities: dict[str, CityNode] = field(default_factory=dict)
    parents: dict[str, ParentNode] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)  # by enterprise code
    hosts: dict[str, Host] = field(default_factory=dict)  # by host name
    routes: list[Route] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # enterprise code -> why

    @property
    def links(self) -> list[Link]:
        return [
            self.root_link,
            *(c.uplink for c in self.cities.values()),
            *(p.uplink for p in self.parents.values()),
            *(s.line for s in self.sites.values()),
        ]

    @property
    def shaped_links(self) -> list[Link]:
        return [lk for lk in self.links if lk.rate_mbps is not None]

    @property
    def namespaces(self) -> list[str]:
        return [
            self.province_ns,
            *(c.ns for c in self.cities.values()),
            *(p.ns for p in self.parents.values()),
            *(s.ns for s in self.sites.values()),
            *(h.ns for h in self.hosts.values()),
        ]

    def link(self, name: str) -> Link:
        for lk in self.links:
            if lk.name == name:
                return lk
        raise KeyError(name)

    def hosts_of(self, key: str) -> list[Host]:
        """The hosts of an enterprise given by code, slug or name."""
        code = self.site_for(key).enterprise.code
        return [h for h in self.hosts.values() if h.enterprise == code]

    def hosts_of_batch(self, batch: int) -> list[Host]:
        """The hosts of every enterprise of a rollout batch that is in the lab."""
        codes = {c for c, s in self.sites.items() if s.enterprise.batch == batch}
        return [h for h in self.hosts.values() if h.enterprise in codes]

    def site_for(self, key: str) -> Site:
        """The site of an enterprise given by code, slug or name."""
        for site in self.sites.values():
            ent = site.enterprise
            if key in (ent.code, ent.slug, ent.name):
                return site
        if key in self.skipped or any(key == c[-8:].lower() for c in self.skipped):
            raise KeyError(f"{key}: this enterprise is not in the lab ({next(iter(self.skipped.values()))})")
        raise KeyError(f"{key}: no enterprise of that code, slug or name in the lab")

    def iperf_target(self, link: Link) -> tuple[str, IPv4Address]:
        """For a shaped link: (namespace the client runs in, iperf3 server address upstream)."""
        for city in self.cities.values():
            if city.uplink == link:
                return city.ns, PROVINCE_ROUTER
        for parent in self.parents.values():
            if parent.uplink == link:
                return parent.ns, PROVINCE_ROUTER
        for site in self.sites.values():
            if site.line == link:
                upstream = {c.ns: c for c in self.cities.values()} | {p.ns: p for p in self.parents.values()}
                return site.ns, upstream[site.upstream_ns].iperf_address
        raise KeyError(f"{link.name}: not a shaped link")


ROLE_PREFIX = {"access_gateway": "agw", "daq_gateway": "daq", "ai_box": "aib"}


def host_name(ent: Enterprise, role: str) -> str:
    """The lab host name of an enterprise's box: the rollout's own name for it (e.g. labe0001-agw)."""
    return ansible_host_name(ent, role)


def line_rate(ent: Enterprise) -> float:
    """N2: what the line really carries: the measured figure if there is one, else the contract."""
    return ent.line.measured_mbps if ent.line.measured_mbps is not None else ent.line.contracted_mbps


def _device_addresses(ent: Enterprise) -> list[tuple[str, IPv4Address]]:
    d = ent.devices
    out: list[tuple[str, IPv4Address]] = [(f"nvrs.{n.name}.address", n.address) for n in d.nvrs]
    if d.switch is not None:
        out.append(("switch.address", d.switch.address))
    for src in ent.data_sources:
        addr = source_address(src)
        if addr is not None:
            out.append((f"data_sources.{src.name}", addr))
    return out


def source_address(src: DataSource) -> IPv4Address | None:
    """Where a data source's simulator listens (None for a serial line)."""
    if src.protocol is Protocol.MODBUS_TCP:
        return src.host
    if src.protocol is Protocol.OPC and src.opc is not None:
        if src.opc.server is not None:
            return src.opc.server
        if src.opc.endpoint:
            from urllib.parse import urlsplit

            return IPv4Address(urlsplit(src.opc.endpoint).hostname or "")
    return None


def build_plan(inv: Inventory) -> LabPlan:
    if inv.province is None:
        raise PlanError(f"{inv.root}: no province.yml; the lab needs the platform's addresses")
    platform = inv.province.platform
    broker = lab_address(platform.mqtt.host, "province.yml platform.mqtt.host")
    # Lab-started services answer on the province's loopback; the broker is a real host instead
    # (the rollout's province_broker role configures it), so its address is not among them.
    services = [("sip.host", platform.sip.host), ("prometheus.host", platform.prometheus.host)]
    services += [(f"ntp[{i}]", a) for i, a in enumerate(platform.ntp)]
    if platform.alertmanager is not None:
        services.append(("alertmanager.host", platform.alertmanager.host))
    if platform.tracker is not None:
        services.append(("tracker.host", platform.tracker.host))
    if platform.mirror is not None:
        services.append(("mirror.url", platform.mirror.netloc[0]))  # the lab's svc:mirror
    svc_set: set[IPv4Address] = set()
    for what, addr in services:
        a = lab_address(addr, f"province.yml platform.{what}")
        if a in (broker, PROVINCE_ROUTER):
            # On the province's loopback it would shadow the host (or the router): nothing would
            # reach the broker, or the service would be answered by the wrong machine.
            taken = "the province broker host (platform.mqtt.host)" if a == broker else "the province router"
            raise PlanError(f"province.yml platform.{what}: {a} is the address of {taken}; give it its own")
        svc_set.add(a)
    svc = tuple(sorted(svc_set))

    pool = LINK_POOL.subnets(new_prefix=30)
    prov = NS_PREFIX + "prov"
    plan = LabPlan(prov, svc, Link("root", "", ROOT_IF, prov, "root", next(pool), None))
    plan.hosts[PROVINCE_BROKER_HOST] = Host(
        name=PROVINCE_BROKER_HOST,
        role=ROLE_PROVINCE_BROKER,
        enterprise="",
        site_ns=prov,
        ns=f"{NS_PREFIX}h-{PROVINCE_BROKER_HOST}",
        address=broker,
        prefix=32,
        gateway=PROVINCE_ROUTER,
        site_if="broker",
        point_to_point=True,
    )

    for code in sorted(inv.cities):
        city = inv.cities[code]
        ns = f"{NS_PREFIX}c{code}"
        rate = (
            city.uplink.measured_mbps
            if city.uplink.measured_mbps is not None
            else city.uplink.contracted_mbps
        )
        plan.cities[code] = CityNode(
            code, ns, Link(f"city-{code}", prov, f"c{code}", ns, "up", next(pool), rate)
        )

    parents = sorted(
        {e.route.parent_company for e in inv.enterprises if e.route.via == "parent_company"} - {None}
    )
    for i, name in enumerate(parents, start=1):
        ns = f"{NS_PREFIX}pc{i}"
        # The parent company's own link to the platform: not in the inventory, so as wide as a city uplink.
        plan.parents[name] = ParentNode(
            name, ns, Link(f"parent-{i}", prov, f"pc{i}", ns, "up", next(pool), 100.0)
        )

    for ent in sorted(inv.enterprises, key=lambda e: e.code):
        if Annotation.LONG_TERM_SHUTDOWN in ent.annotations:
            plan.skipped[ent.code] = "long_term_shutdown (R4): never rolled out, so not simulated"
            continue
        _add_site(plan, ent, pool)
    _add_routes(plan)
    return plan


def _add_site(plan: LabPlan, ent: Enterprise, pool) -> None:
    boxes = [(r, getattr(ent.devices, r)) for r in ROLE_PREFIX if getattr(ent.devices, r) is not None]
    if not boxes:
        plan.skipped[ent.code] = "no gateway or AI box in the inventory"
        return
    first = lab_address(boxes[0][1].address, f"enterprise {ent.code} devices.{boxes[0][0]}.address")
    lan = ip_network(f"{first}/24", strict=False)
    used: set[IPv4Address] = set()
    for role, box in boxes:
        a = lab_address(box.address, f"enterprise {ent.code} devices.{role}.address")
        if a not in lan:
            raise PlanError(f"enterprise {ent.code} devices.{role}.address: {a} is not in the site LAN {lan}")
        used.add(a)
    devices: list[IPv4Address] = []
    for what, addr in _device_addresses(ent):
        a = lab_address(addr, f"enterprise {ent.code} {what}")
        if a not in lan:
            raise PlanError(f"enterprise {ent.code} {what}: {a} is not in the site LAN {lan}")
        if a not in devices:
            devices.append(a)
    used.update(devices)
    gateway = next(h for h in lan.hosts() if h not in used)
    ns = f"{NS_PREFIX}e-{ent.slug}"
    if ent.route.via == "parent_company":
        upstream = plan.parents[ent.route.parent_company or ""].ns
    else:
        if ent.city not in plan.cities:
            raise PlanError(f"enterprise {ent.code} city: {ent.city} has no city.yml in the inventory")
        upstream = plan.cities[ent.city].ns
    line = Link(f"line-{ent.slug}", upstream, f"e-{ent.slug}", ns, "up", next(pool), line_rate(ent))
    plan.sites[ent.code] = Site(ent, ns, lan, gateway, tuple(devices), line, upstream)
    rtu = [s.name for s in ent.data_sources if s.protocol is Protocol.MODBUS_RTU]
    for role, box in boxes:
        name = host_name(ent, role)
        plan.hosts[name] = Host(
            name=name,
            role=role,
            enterprise=ent.code,
            site_ns=ns,
            ns=f"{NS_PREFIX}h-{name}",
            address=IPv4Address(str(box.address)),
            prefix=lan.prefixlen,
            gateway=gateway,
            site_if=ROLE_PREFIX[role],
            serial_source=rtu[0] if (rtu and role == "daq_gateway") else None,
        )


def _add_routes(plan: LabPlan) -> None:
    r = plan.routes
    root = plan.root_link
    r.append(Route("", LAB_NET, root.addr_b, ROOT_IF, root.name))
    by_ns = {c.ns: c.uplink for c in plan.cities.values()} | {p.ns: p.uplink for p in plan.parents.values()}
    for uplink in by_ns.values():
        r.append(Route(uplink.ns_b, ip_network("0.0.0.0/0"), uplink.addr_a, uplink.if_b, uplink.name))
    for site in plan.sites.values():
        line = site.line
        uplink = by_ns[site.upstream_ns]
        r.append(Route(site.ns, ip_network("0.0.0.0/0"), line.addr_a, line.if_b, line.name))
        r.append(Route(site.upstream_ns, site.lan, line.addr_b, line.if_a, line.name))
        for dest in (site.lan, line.subnet):
            r.append(Route(plan.province_ns, dest, uplink.addr_b, uplink.if_a, uplink.name))
