"""The load publisher's MQTT 5 packets: the spec's own examples, round trips and framing across any split."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators import mqtt_wire


@pytest.mark.parametrize(
    ("n", "encoded"),
    [  # MQTT 5, 1.5.5, table 1-1: the bounds of each size
        (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"), (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)  # fmt: skip
def test_remaining_length_matches_the_spec(n: int, encoded: bytes) -> None:
    assert mqtt_wire.remaining_length(n) == encoded
    assert mqtt_wire.read_varint(b"\x99" + encoded + b"\x01", 1) == (n, 1 + len(encoded))


def test_a_length_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.268435455"):
        mqtt_wire.remaining_length(268_435_456)
    with pytest.raises(mqtt_wire.MqttError, match="longer than four bytes"):
        mqtt_wire.read_varint(b"\xff\xff\xff\xff\x01", 0)
    assert mqtt_wire.read_varint(b"\xff\xff", 0) is None  # not yet whole


@given(st.integers(0, mqtt_wire.MAX_REMAINING))
def test_remaining_length_round_trips(n: int) -> None:
    encoded = mqtt_wire.remaining_length(n)
    assert mqtt_wire.read_varint(encoded, 0) == (n, len(encoded))


def test_a_publish_packet_is_laid_out_as_the_spec_says() -> None:
    packet = mqtt_wire.publish_qos1(mqtt_wire.topic_prefix("a/b"), 0x0102, b"hi")
    # fixed header: PUBLISH, QoS 1 (0x32), remaining 10; topic "a/b"; packet id 0x0102; no properties; payload
    assert packet == b"\x32\x0a" + b"\x00\x03a/b" + b"\x01\x02" + b"\x00" + b"hi"


@pytest.mark.parametrize("topic", ["", "devices/+/telemetry", "devices/#"])
def test_a_wildcard_or_empty_topic_is_not_published_to(topic: str) -> None:
    with pytest.raises(ValueError, match="not a topic to publish to"):
        mqtt_wire.topic_prefix(topic)


@given(
    st.lists(st.tuples(st.integers(0, 15), st.binary(max_size=300)), max_size=20),
    st.lists(st.integers(1, 50), max_size=30),
)
def test_packets_are_framed_whatever_the_reads_split(sent: list[tuple[int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(bytes([kind << 4]) + mqtt_wire.remaining_length(len(body)) + body for kind, body in sent)
    buffer, got, at = bytearray(), [], 0
    for size in [*cuts, len(stream)]:
        buffer += stream[at : at + size]
        at += size
        got += mqtt_wire.packets(buffer)
    assert [(p.kind, p.body) for p in got] == sent
    assert not buffer


def test_a_connect_packet_carries_the_account() -> None:
    packet = mqtt_wire.connect_packet("", "admin", "s3cret", 60)
    body = packet[2:]
    assert packet[0] == 0x10
    assert packet[1] == len(body)
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0xC2  # username, password, clean start
    assert struct.unpack("!H", body[8:10]) == (60,)
    assert body[10:] == b"\x00" + b"\x00\x00" + b"\x00\x05admin" + b"\x00\x06s3cret"
    assert mqtt_wire.connect_packet("x", None, None, 0)[9] == 0x02  # anonymous: clean start only


def test_connack_reads_the_receive_maximum_among_other_properties() -> None:
    props = (
        b"\x22\x00\x0a"  # topic alias maximum
        + b"\x12\x00\x03abc"  # assigned client identifier
        + b"\x26\x00\x01k\x00\x01v"  # user property
        + b"\x21\x03\xe8"  # receive maximum 1000
        + b"\x24\x01"  # maximum QoS
    )
    answer = mqtt_wire.connack(b"\x00\x00" + mqtt_wire.remaining_length(len(props)) + props)
    assert answer == mqtt_wire.Connack(reason=0, receive_maximum=1000)
    assert mqtt_wire.connack(b"\x00\x86\x00") == mqtt_wire.Connack(reason=0x86, receive_maximum=65_535)
    with pytest.raises(mqtt_wire.MqttError, match="unknown CONNACK property 0x7f"):
        mqtt_wire.connack(b"\x00\x00\x02\x7f\x00")


def test_puback_reason_defaults_to_success() -> None:
    assert mqtt_wire.puback_reason(b"\x00\x07") == 0
    assert mqtt_wire.puback_reason(b"\x00\x07\x87\x00") == 0x87
    with pytest.raises(mqtt_wire.MqttError, match="a PUBACK of 1 bytes"):
        mqtt_wire.puback_reason(b"\x00")
