"""Serve a simulated source's tag table as an OPC UA server (D1a: OPC DA reached through a UA bridge).

Nodes are the tags' node ids (e.g. "ns=2;s=TK301.LT"), with variant types matching Tag.type.
Only username/password sessions are accepted: DataSource.opc.username and the vault password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from asyncua import Node, Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from hazmon.inventory.model import DataSource, DataType
from hazmon.lab.sim.dcs_signals import Process, typed_value

OPC_UA_PORT = 4840

VARIANT: dict[DataType, ua.VariantType] = {
    DataType.INT16: ua.VariantType.Int16,
    DataType.UINT16: ua.VariantType.UInt16,
    DataType.INT32: ua.VariantType.Int32,
    DataType.UINT32: ua.VariantType.UInt32,
    DataType.FLOAT32: ua.VariantType.Float,
    DataType.FLOAT64: ua.VariantType.Double,
}


@dataclass(frozen=True)
class PasswordUsers(UserManager):
    """Exactly one account, as the enterprise set up for the platform on its UA bridge."""

    username: str
    password: str

    def get_user(self, iserver, username=None, password=None, certificate=None) -> User | None:  # type: ignore[override]
        if username == self.username and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


def endpoint_url(source: DataSource, bind: str, port: int | None) -> str:
    """The source's endpoint path, served on --bind and --port (default: the endpoint's port, 4840)."""
    if source.opc is None or not source.opc.endpoint:
        raise ValueError(f"source {source.name}: an opc source needs opc.endpoint (rule D1a)")
    parsed = urlparse(source.opc.endpoint)
    return f"opc.tcp://{bind}:{port or parsed.port or OPC_UA_PORT}{parsed.path or '/'}"


@dataclass
class OpcServer:
    """An asyncua server whose variables follow the process; `stop`/`resume` model a dead bridge."""

    source: DataSource
    process: Process
    url: str
    password: str
    server: Server | None = None
    listening: bool = False
    nodes: dict[str, Node] = field(default_factory=dict)

    async def start(self) -> None:
        """Build the address space and listen."""
        opc = self.source.opc
        if opc is None or not opc.username:
            raise ValueError(f"source {self.source.name}: opc.username is needed for password sessions")
        server = Server(user_manager=PasswordUsers(opc.username, self.password))
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name(f"hazmon lab {self.source.system or self.source.name}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.UserNameIdentityToken])
        await self._add_nodes(server)
        await server.start()
        self.server = server
        self.listening = True
        await self.publish()

    async def _add_nodes(self, server: Server) -> None:
        ids = {tag.code: ua.NodeId.from_string(tag.node or "") for tag in self.process.tags}
        # Node ids name namespace indexes: register namespaces until every index used exists.
        needed = max((nid.NamespaceIndex for nid in ids.values()), default=0)
        while len(await server.get_namespace_array()) <= needed:
            count = len(await server.get_namespace_array())
            await server.register_namespace(f"urn:hazmon:lab:{self.source.name}:ns{count}")
        folder = await server.nodes.objects.add_folder(
            ua.NodeId(f"{self.source.name}", max(needed, 1)), ua.QualifiedName(self.source.name, max(needed, 1))
        )
        self.nodes = {}
        for tag in self.process.tags:
            nid = ids[tag.code]
            value = ua.Variant(typed_value(tag, self.process.signals[tag.code].value), VARIANT[tag.type])
            self.nodes[tag.code] = await folder.add_variable(
                nid, ua.QualifiedName(tag.code, nid.NamespaceIndex), value
            )

    async def publish(self) -> None:
        """Write the process's current values into the variables (after every tick)."""
        if self.server is None:
            return
        for code, node in self.nodes.items():
            sig = self.process.signals[code]
            variant = ua.Variant(typed_value(sig.tag, sig.value), VARIANT[sig.tag.type])
            await self.server.write_attribute_value(node.nodeid, ua.DataValue(variant))

    async def stop(self) -> None:
        """Close every connection and the listening socket: clients fail to connect (a dead bridge)."""
        if self.server is not None and self.server.bserver is not None and self.listening:
            await self.server.bserver.stop()
            self.listening = False

    async def resume(self) -> None:
        """Listen again, with the same address space (a bridge back after a network fault)."""
        if self.server is not None and self.server.bserver is not None and not self.listening:
            await self.server.bserver.start()
            self.listening = True

    async def close(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()
