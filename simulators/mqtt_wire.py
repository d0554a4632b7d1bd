"""The few MQTT 5 packets the load publisher writes and reads itself, so that a benchmark measures the platform and
not paho's publish path.

paho builds each QoS 1 PUBLISH in Python (a message object, its properties, a packet id map, a lock, one ``send``
per packet): 100-120 µs a message here, a fifth to a third of the machine at the load runs' rates
(docs/benchmarks.md). The load publisher sends one pre-encoded topic per device and a payload filled from a
template, many packets in one ``sendall``, and counts the PUBACKs a reader thread parses: the broker sees the same
packets, QoS 1, one connection, every message acknowledged. No sans-IO MQTT codec is in our package registry; what
is here is the part of MQTT 5 (OASIS standard, sections 2.1-2.2 and 3.1-3.4, 3.12-3.14) that such a client needs:
CONNECT with a username and password, CONNACK's reason code and Receive Maximum, PUBLISH at QoS 1 without
properties, PUBACK, PINGREQ/PINGRESP and DISCONNECT. Fleets and drills keep a real paho client per device.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

CONNACK, PUBLISH, PUBACK, PINGRESP, DISCONNECT = 2, 3, 4, 13, 14
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
RECEIVE_MAXIMUM = 0x21
MAX_REMAINING = 268_435_455

# Property identifier -> its value's size in bytes; "s" a two-byte-length string or binary, "p" a string pair,
# "v" a variable byte integer (MQTT 5, 2.2.2.2).
_PROPERTY_SIZES: dict[int, int | str] = {
    0x01: 1, 0x02: 4, 0x03: "s", 0x08: "s", 0x09: "s", 0x0B: "v", 0x11: 4, 0x12: "s", 0x13: 2, 0x15: "s",
    0x16: "s", 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: "s", 0x1C: "s", 0x1F: "s", 0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1,
    0x25: 1, 0x26: "p", 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
}  # fmt: skip


class MqttError(Exception):
    """The broker refused us or spoke something this client does not read."""


def remaining_length(n: int) -> bytes:
    """MQTT's variable byte integer (2.1.4): seven bits a byte, least significant first."""
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"an MQTT remaining length is 0..{MAX_REMAINING}, not {n}")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data: bytes | bytearray, at: int) -> tuple[int, int] | None:
    """The variable byte integer at ``at`` and the offset after it; None if ``data`` ends first."""
    value, shift = 0, 0
    for i in range(at, min(at + 4, len(data))):
        value |= (data[i] & 0x7F) << shift
        if not data[i] & 0x80:
            return value, i + 1
        shift += 7
    if len(data) >= at + 4:
        raise MqttError("a variable byte integer longer than four bytes")
    return None


def _utf8(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > 0xFFFF:
        raise ValueError("an MQTT string is at most 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, username: str | None, password: str | None, keepalive_s: int) -> bytes:
    """CONNECT, MQTT 5, clean start, no properties (3.1)."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive_s) + b"\x00" + _utf8(client_id)
    if username is not None:
        body += _utf8(username)
    if password is not None:
        body += _utf8(password.encode())
    return b"\x10" + remaining_length(len(body)) + body


def topic_prefix(topic: str) -> bytes:
    """The part of a PUBLISH's variable header that depends on the topic alone (its length and bytes)."""
    if not topic or "+" in topic or "#" in topic:
        raise ValueError(f"not a topic to publish to: {topic!r}")
    return _utf8(topic)


def publish_qos1(prefix: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH, QoS 1, not retained, no properties (3.3); ``prefix`` from ``topic_prefix``."""
    rest = prefix + struct.pack("!HB", packet_id, 0) + payload
    return b"\x32" + remaining_length(len(rest)) + rest


@dataclass(frozen=True, slots=True)
class Packet:
    kind: int
    body: bytes


def packets(buffer: bytearray) -> list[Packet]:
    """Every whole packet at the start of ``buffer``, removed from it; a partial one stays for the next read."""
    out, at = [], 0
    while len(buffer) - at >= 2:
        length = read_varint(buffer, at + 1)
        if length is None or length[1] + length[0] > len(buffer):
            break
        size, start = length
        out.append(Packet(buffer[at] >> 4, bytes(buffer[start : start + size])))
        at = start + size
    del buffer[:at]
    return out


def puback_reason(body: bytes) -> int:
    """A PUBACK's reason code; 0 when the broker left it out (3.4.2.1: success, no properties)."""
    if len(body) < 2:
        raise MqttError(f"a PUBACK of {len(body)} bytes")
    return body[2] if len(body) > 2 else 0


def disconnect_reason(body: bytes) -> int:
    return body[0] if body else 0


@dataclass(frozen=True, slots=True)
class Connack:
    reason: int
    receive_maximum: int


def connack(body: bytes) -> Connack:
    """CONNACK's reason code and the broker's Receive Maximum (65,535 when it sets none, 3.2.2.3.3)."""
    if len(body) < 3:
        raise MqttError(f"a CONNACK of {len(body)} bytes")
    reason, receive_maximum = body[1], 65_535
    length = read_varint(body, 2)
    if length is None:
        raise MqttError("a CONNACK cut short in its properties")
    size, at = length
    end = at + size
    while at < end:
        ident = body[at]
        at += 1
        kind = _PROPERTY_SIZES.get(ident)
        if kind is None:
            raise MqttError(f"an unknown CONNACK property 0x{ident:02x}")
        if ident == RECEIVE_MAXIMUM:
            receive_maximum = struct.unpack_from("!H", body, at)[0]
        if isinstance(kind, int):
            at += kind
        elif kind == "v":
            value = read_varint(body, at)
            if value is None:
                raise MqttError("a CONNACK cut short in a property")
            at = value[1]
        else:
            for _ in range(2 if kind == "p" else 1):
                at += 2 + struct.unpack_from("!H", body, at)[0]
    return Connack(reason, receive_maximum)


def open_connection(
    host: str, port: int, username: str | None, password: str | None, keepalive_s: int = 60, timeout_s: float = 30
) -> tuple[socket.socket, Connack]:
    """A connected, accepted MQTT 5 session; ``MqttError`` with the broker's reason if it refuses."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet("", username, password, keepalive_s))
    buffer = bytearray()
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            raise MqttError("the broker closed the connection before its CONNACK")
        buffer += chunk
        got = packets(buffer)
        if got:
            break
    if got[0].kind != CONNACK:
        sock.close()
        raise MqttError(f"expected CONNACK, got packet type {got[0].kind}")
    answer = connack(got[0].body)
    if answer.reason >= 0x80:
        sock.close()
        raise MqttError(f"the broker refused the connection: reason 0x{answer.reason:02x}")
    sock.settimeout(None)
    return sock, answer
