#!/usr/bin/python
# hazmon: one real protocol exchange with a DCS/GDS data source (preflight live check, D1a-c).
# Runs ON the data-acquisition gateway (python3 3.11, stdlib only): the protocol code lives here.
from __future__ import annotations

DOCUMENTATION = r"""
module: hazmon_dcs_probe
short_description: Check that a DCS/GDS data source answers, with one real protocol exchange
description:
  - Modbus TCP (D1c) reads one holding (function 3) or input (function 4) register of a slave.
  - Modbus RTU (D1b) reads one register over a serial line (RS-485 adapter or UART), set up with
    termios (baud, parity, data and stop bits); the frame carries a CRC-16 and the answer's CRC is
    checked.
  - OPC UA (D1a) opens a TCP connection to the endpoint and exchanges the binary Hello/Acknowledge
    handshake (UA TCP "HEL"/"ACK"); no session is created, so no credential is needed.
  - Returns the latency and the answer. Fails with a message naming the source, the protocol, the
    address and what happened (timeout, connection refused, Modbus exception code, bad CRC, UA error).
  - Read-only (a register read, a handshake). Never reports changed. Runs in check mode too.
  - An RS-485 line has one master. While another process (hazmon-collector) holds the serial device
    open, two masters' frames would collide (on a lab line 2 probes in 20 got a spurious exception
    answer, and the other master lost reads), so by default the line is then not probed; the result
    says so (RV(probed) false, RV(busy) names the holder). A timeout, a bad CRC or a frame from another
    slave is retried (O(retries)); an exception answer is not.
version_added: "0.5.0"
author: hazmon
options:
  name:
    description: The data source's name in the inventory (for messages).
    type: str
    required: true
  protocol:
    description: How the source offers its data (the inventory's data_sources[].protocol).
    type: str
    required: true
    choices: [modbus_tcp, modbus_rtu, opc]
  host:
    description: Modbus TCP slave address.
    type: str
  port:
    description: Modbus TCP port.
    type: int
    default: 502
  slave_id:
    description: Modbus unit/slave id.
    type: int
    default: 1
  register:
    description: Register address (0-based, as on the wire) to read.
    type: int
    default: 0
  function:
    description: Modbus function, 3 (holding registers) or 4 (input registers).
    type: int
    default: 3
    choices: [3, 4]
  serial_port:
    description: Modbus RTU serial device, e.g. C(/dev/ttyS1).
    type: str
  baud:
    description: Modbus RTU line speed.
    type: int
    default: 9600
  parity:
    description: Modbus RTU parity.
    type: str
    default: N
    choices: [N, E, O]
  data_bits:
    description: Modbus RTU data bits.
    type: int
    default: 8
    choices: [7, 8]
  stop_bits:
    description: Modbus RTU stop bits.
    type: int
    default: 1
    choices: [1, 2]
  endpoint:
    description: OPC UA endpoint URL, C(opc.tcp://HOST:PORT/PATH).
    type: str
  timeout:
    description: Seconds to wait for the connection and for the answer.
    type: float
    default: 2.0
  retries:
    description: Further attempts after a timeout or a frame that is not the answer.
    type: int
    default: 1
  probe_busy_line:
    description: Modbus RTU, probe even while another process holds the serial device open.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: DCS answers (Modbus TCP)
  hazmon_dcs_probe:
    name: dcs
    protocol: modbus_tcp
    host: 198.19.1.20
    port: 502
    slave_id: 1
    register: 0

- name: GDS answers (Modbus RTU on the gateway's serial port)
  hazmon_dcs_probe:
    name: gds
    protocol: modbus_rtu
    serial_port: /dev/ttyS1
    baud: 9600
    parity: N
    slave_id: 3

- name: OPC UA server answers the UA TCP handshake
  hazmon_dcs_probe:
    name: dcs
    protocol: opc
    endpoint: opc.tcp://198.19.2.21:4840/hazmon/
"""

RETURN = r"""
latency_ms:
  description: Time from sending the request to the complete answer, in milliseconds.
  type: float
  returned: success
value:
  description: The register's value (unsigned 16-bit), Modbus only.
  type: int
  returned: success, Modbus
answer:
  description: The answer's bytes in hex (Modbus PDU or RTU frame; UA ACK message).
  type: str
  returned: success
acknowledge:
  description: The server's UA TCP Acknowledge (protocol_version, receive_buffer_size, send_buffer_size,
    max_message_size, max_chunk_count).
  type: dict
  returned: success, OPC UA
target:
  description: What was asked, in words (protocol, address, slave, function, register).
  type: str
  returned: always
probed:
  description: Whether the exchange took place (false when an RTU line was busy with another master).
  type: bool
  returned: success
busy:
  description: Processes holding the RTU serial device open (pid, name), when the line was not probed.
  type: list
  elements: dict
  returned: when the line was busy
"""

import os  # noqa: E402
import select  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import struct  # noqa: E402
import termios  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
BAUDS = {
    1200: termios.B1200,
    2400: termios.B2400,
    4800: termios.B4800,
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
}


class ProbeError(Exception):
    """The exchange failed; the message says what happened (the caller adds which source)."""


class Retryable(ProbeError):
    """A timeout or a stray frame: another attempt may succeed."""


# ---------------------------------------------------------------- Modbus


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def read_pdu(function: int, register: int, count: int = 1) -> bytes:
    return struct.pack(">BHH", function, register, count)


def rtu_frame(slave: int, pdu: bytes) -> bytes:
    body = bytes([slave]) + pdu
    return body + struct.pack("<H", crc16(body))


def mbap(transaction: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


def parse_pdu(function: int, pdu: bytes) -> int:
    """The register value in a read answer's PDU, or ProbeError for an exception or a wrong answer."""
    if not pdu:
        raise ProbeError("empty answer")
    if pdu[0] == function | 0x80:
        code = pdu[1] if len(pdu) > 1 else 0
        raise ProbeError(f"Modbus exception code {code} ({EXCEPTIONS.get(code, 'unknown')})")
    if pdu[0] != function:
        raise Retryable(f"answer to function {pdu[0]}, not {function}")
    if len(pdu) < 4 or pdu[1] != 2:
        raise ProbeError(f"malformed answer {pdu.hex()} (expected 2 data bytes)")
    return struct.unpack(">H", pdu[2:4])[0]


def rtu_answer_length(head: bytes) -> int | None:
    """Length of the RTU frame starting with these bytes (slave, function, [count]), when known."""
    if len(head) < 2:
        return None
    if head[1] & 0x80:
        return 5  # slave, function|0x80, exception code, CRC
    if len(head) < 3:
        return None
    return 3 + head[2] + 2  # slave, function, byte count, data, CRC


def check_rtu(slave: int, function: int, frame: bytes) -> int:
    if len(frame) < 4:
        raise Retryable(f"short frame {frame.hex()}")
    body, (crc,) = frame[:-2], struct.unpack("<H", frame[-2:])
    if crc16(body) != crc:
        raise Retryable(f"bad CRC in answer {frame.hex()} (computed {crc16(body):04x}, got {crc:04x})")
    if body[0] != slave:
        raise Retryable(f"answer from slave {body[0]}, not {slave}")
    return parse_pdu(function, body[1:])


def recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Retryable(f"timeout: {len(buf)} of {n} bytes received")
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(buf))
        except TimeoutError:
            raise Retryable(f"timeout: no answer within the time allowed ({len(buf)} bytes received)") from None
        if not chunk:
            raise ProbeError("connection closed by the slave")
        buf += chunk
    return buf


def modbus_tcp(host: str, port: int, unit: int, function: int, register: int, timeout: float) -> tuple[int, bytes]:
    """(value, answer PDU) of one register read over Modbus TCP."""
    deadline = time.monotonic() + timeout
    transaction = int(time.monotonic() * 1000) & 0xFFFF
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise Retryable(f"timeout connecting after {timeout:g} s") from None
    except OSError as exc:
        raise ProbeError(f"cannot connect: {exc.strerror or exc}") from None
    with sock:
        sock.sendall(mbap(transaction, unit, read_pdu(function, register)))
        while True:
            head = recv_exact(sock, 7, deadline)
            tid, proto, length, got_unit = struct.unpack(">HHHB", head)
            if proto != 0 or not 2 <= length <= 254:
                raise ProbeError(f"not a Modbus TCP answer (header {head.hex()})")
            pdu = recv_exact(sock, length - 1, deadline)
            if tid == transaction:
                break  # answers to other transactions are not ours
        if got_unit != unit and unit != 0:
            raise ProbeError(f"answer from unit {got_unit}, not {unit}")
        return parse_pdu(function, pdu), pdu


def configure_serial(fd: int, baud: int, parity: str, data_bits: int, stop_bits: int) -> None:
    """Raw 8N1-style line set with termios (what pyserial does, without pyserial)."""
    if baud not in BAUDS:
        raise ProbeError(f"baud {baud} not supported (one of {', '.join(map(str, BAUDS))})")
    attrs = termios.tcgetattr(fd)
    iflag, oflag, cflag, lflag = 0, 0, attrs[2], 0
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB | termios.CRTSCTS)
    cflag |= termios.CLOCAL | termios.CREAD | (termios.CS8 if data_bits == 8 else termios.CS7)
    if parity != "N":
        cflag |= termios.PARENB | (termios.PARODD if parity == "O" else 0)
        iflag |= termios.INPCK
    if stop_bits == 2:
        cflag |= termios.CSTOPB
    cc = list(attrs[6])
    cc[termios.VMIN], cc[termios.VTIME] = 0, 0
    speed = BAUDS[baud]
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])
    got = termios.tcgetattr(fd)
    # A pty (and some adapters) drops settings it cannot carry, parity above all: say so.
    if parity != "N" and not got[2] & termios.PARENB:
        raise ProbeError(f"the device refused parity {parity} (a pty carries none)")


def line_holders(device: str) -> list[dict]:
    """Other processes holding this serial device open (by device number: a bind-mounted or
    symlinked tty is found under any name)."""
    try:
        rdev = os.stat(device).st_rdev
    except OSError:
        return []
    found = []
    for proc in os.scandir("/proc"):
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list(os.scandir(f"/proc/{proc.name}/fd"))
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                st = os.stat(fd.path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev:
                try:
                    with open(f"/proc/{proc.name}/comm", encoding="utf-8") as fh:
                        name = fh.read().strip()
                except OSError:
                    name = "?"
                found.append({"pid": int(proc.name), "name": name})
                break
    return found


def modbus_rtu(
    device: str, baud: int, parity: str, data_bits: int, stop_bits: int, slave: int, function: int, register: int,
    timeout: float,
) -> tuple[int, bytes]:
    """(value, answer frame) of one register read over Modbus RTU."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProbeError(f"cannot open {device}: {exc.strerror}") from None
    try:
        try:
            configure_serial(fd, baud, parity, data_bits, stop_bits)
        except termios.error as exc:
            raise ProbeError(f"cannot set {baud} {data_bits}{parity}{stop_bits} on {device}: {exc}") from None
        # 3.5 character times of silence mark a frame boundary: drop what is in flight, then wait them.
        char = (1 + data_bits + (parity != "N") + stop_bits) / baud
        termios.tcflush(fd, termios.TCIOFLUSH)
        time.sleep(max(3.5 * char, 0.00175))
        os.write(fd, rtu_frame(slave, read_pdu(function, register)))
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            want = rtu_answer_length(buf)
            if want is not None and len(buf) >= want:
                return check_rtu(slave, function, buf[:want]), buf[:want]
            left = deadline - time.monotonic()
            if left <= 0:
                got = f"{len(buf)} bytes ({buf.hex()})" if buf else "nothing"
                raise Retryable(f"timeout after {timeout:g} s: {got} received")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                buf += os.read(fd, 256)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- OPC UA


def ua_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<i", len(data)) + data


def ua_hello(endpoint: str, buffer_size: int = 65535) -> bytes:
    """A UA TCP Hello message (OPC UA Part 6, 7.1.2.3)."""
    body = struct.pack("<IIIII", 0, buffer_size, buffer_size, 0, 0) + ua_string(endpoint)
    return b"HELF" + struct.pack("<I", 8 + len(body)) + body


def parse_ua_answer(message: bytes) -> dict[str, int]:
    """The fields of an ACK, or ProbeError carrying the server's ERR (code and reason)."""
    kind = message[:3]
    if kind == b"ACK" and len(message) >= 28:
        names = ("protocol_version", "receive_buffer_size", "send_buffer_size", "max_message_size", "max_chunk_count")
        return dict(zip(names, struct.unpack("<IIIII", message[8:28]), strict=True))
    if kind == b"ERR" and len(message) >= 16:
        (code,) = struct.unpack("<I", message[8:12])
        (n,) = struct.unpack("<i", message[12:16])
        reason = message[16 : 16 + n].decode("utf-8", "replace") if n > 0 else ""
        raise ProbeError(f"server answered ERR 0x{code:08X} {reason}".rstrip())
    raise ProbeError(f"not a UA TCP answer: {message[:16].hex()}")


def opc_hello(endpoint: str, timeout: float) -> tuple[dict[str, int], bytes]:
    url = urlsplit(endpoint)
    if url.scheme != "opc.tcp" or not url.hostname:
        raise ProbeError(f"endpoint {endpoint!r} is not opc.tcp://HOST[:PORT]/...")
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((url.hostname, url.port or 4840), timeout=timeout)
    except TimeoutError:
        raise Retryable(f"timeout connecting after {timeout:g} s") from None
    except OSError as exc:
        raise ProbeError(f"cannot connect: {exc.strerror or exc}") from None
    with sock:
        sock.sendall(ua_hello(endpoint))
        head = recv_exact(sock, 8, deadline)
        (size,) = struct.unpack("<I", head[4:8])
        if not 8 <= size <= 65536:
            raise ProbeError(f"not a UA TCP answer: {head.hex()}")
        message = head + recv_exact(sock, size - 8, deadline)
    return parse_ua_answer(message), message


# ---------------------------------------------------------------- module


def target(p: dict) -> str:
    """The exchange in words, for every message."""
    proto = p["protocol"]
    if proto == "opc":
        return f"opc {p['endpoint']} (UA TCP Hello)"
    kind = "holding" if p["function"] == 3 else "input"
    where = f"{p['host']}:{p['port']}" if proto == "modbus_tcp" else (
        f"{p['serial_port']} {p['baud']} {p['data_bits']}{p['parity']}{p['stop_bits']}"
    )
    return f"{proto} {where} slave {p['slave_id']} function {p['function']} ({kind} register {p['register']})"


def exchange(p: dict) -> dict:
    """One exchange as the parameters say; the result's fields, or ProbeError."""
    proto, timeout = p["protocol"], p["timeout"]
    started = time.monotonic()
    if proto == "modbus_tcp":
        value, answer = modbus_tcp(p["host"], p["port"], p["slave_id"], p["function"], p["register"], timeout)
        out: dict = {"value": value}
    elif proto == "modbus_rtu":
        value, answer = modbus_rtu(
            p["serial_port"], p["baud"], p["parity"], p["data_bits"], p["stop_bits"], p["slave_id"],
            p["function"], p["register"], timeout,
        )
        out = {"value": value}
    else:
        ack, answer = opc_hello(p["endpoint"], timeout)
        out = {"acknowledge": ack}
    out.update(latency_ms=round((time.monotonic() - started) * 1000, 2), answer=answer.hex())
    return out


def probe(p: dict) -> tuple[bool, dict, str]:
    """(ok, result fields, message) after up to 1 + retries attempts."""
    what = target(p)
    if p["protocol"] == "modbus_rtu" and not p.get("probe_busy_line"):
        busy = line_holders(p["serial_port"])
        if busy:
            holders = ", ".join(f"{b['name']} (pid {b['pid']})" for b in busy)
            return True, {"probed": False, "busy": busy}, (
                f"source {p['name']}: {what}: not probed: the line is in use by {holders}, another Modbus "
                "master (its own reads say whether the source answers)"
            )
    errors = []
    for _ in range(1 + max(p["retries"], 0)):
        try:
            out = exchange(p)
        except Retryable as exc:
            errors.append(str(exc))
            continue
        except ProbeError as exc:
            errors.append(str(exc))
            break
        return True, {"probed": True, **out}, f"source {p['name']}: {what} answered in {out['latency_ms']} ms"
    tries = f" ({len(errors)} attempts)" if len(errors) > 1 else ""
    return False, {}, f"source {p['name']}: {what}: {errors[-1]}{tries}"


REQUIRED = {"modbus_tcp": ("host",), "modbus_rtu": ("serial_port",), "opc": ("endpoint",)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "protocol": {"type": "str", "required": True, "choices": ["modbus_tcp", "modbus_rtu", "opc"]},
            "host": {"type": "str"},
            "port": {"type": "int", "default": 502},
            "slave_id": {"type": "int", "default": 1},
            "register": {"type": "int", "default": 0},
            "function": {"type": "int", "default": 3, "choices": [3, 4]},
            "serial_port": {"type": "str"},
            "baud": {"type": "int", "default": 9600},
            "parity": {"type": "str", "default": "N", "choices": ["N", "E", "O"]},
            "data_bits": {"type": "int", "default": 8, "choices": [7, 8]},
            "stop_bits": {"type": "int", "default": 1, "choices": [1, 2]},
            "endpoint": {"type": "str"},
            "timeout": {"type": "float", "default": 2.0},
            "retries": {"type": "int", "default": 1},
            "probe_busy_line": {"type": "bool", "default": False},
        },
        required_if=[("protocol", proto, fields) for proto, fields in REQUIRED.items()],
        supports_check_mode=True,
    )
    p = module.params
    ok, out, msg = probe(p)
    result = {"changed": False, "target": target(p), "msg": msg, **out}
    if not ok:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
