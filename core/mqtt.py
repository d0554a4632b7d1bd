"""paho-mqtt (v2 callback API) driven by the asyncio loop: no network thread, no locks between threads.

Shared by every service that speaks MQTT (the ingest gateway, the account administrator, the alerts' MQTT channel).

paho's socket callbacks tell us when its socket opens, closes and wants writing; we register it with the loop's
reader and writer and call ``loop_read``/``loop_write``/``loop_misc`` from there (the pattern of paho's own
``loop_asyncio`` example). Reconnection is ours: exponential backoff with jitter (``core.backoff``), from 0.5 s
to 30 s, reset by a session that lasted; a session lost soon after it began is followed by a backoff before the
next attempt (the broker may be refusing or kicking us, e.g. a client id used twice).

TLS (``mqtts://``, docs/tls.md) uses the context ``MqttConnection.mqtt_tls_context`` builds. A broker certificate we
do not trust, or a broker that closes the connection before accepting it (what Mosquitto does when it requires a
client certificate we lack), is logged as an error naming the setting to fix; we keep retrying, as for a refused
password, since the broker side may be what gets fixed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.backoff import Backoff
from core.errors import MqttUnavailable
from core.settings import MqttConnection

logger = logging.getLogger(__name__)

MessageHandler = Callable[[mqtt.MQTTMessage], None]

_MAX_PACKETS_PER_WAKE = 256
#: Seconds between PINGREQs when nothing else goes out; a PINGRESP unread this long after one ends the connection.
KEEPALIVE_S = 30


class AsyncMqttClient:
    """One MQTT 5 connection on the running asyncio loop, resubscribing and reconnecting by itself.

    ``on_connected(session_present)`` runs on every successful connect; ``on_message`` for every message.
    """

    def __init__(
        self,
        conn: MqttConnection,
        client_id: str,
        *,
        clean_start: bool,
        session_expiry_s: int = 0,
        receive_maximum: int = 65535,
        manual_ack: bool = False,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        subscriptions: list[tuple[str, int]] | None = None,
        on_message: MessageHandler | None = None,
        on_connected: Callable[[bool], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        """``will``: (topic, payload) the broker publishes, retained at QoS 1, if we vanish (a device's status)."""
        self._conn = conn
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._v5 = protocol == MQTTProtocolVersion.MQTTv5
        self._subscriptions = subscriptions or []
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._loop: asyncio.AbstractEventLoop | None = None
        self._misc: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._closing = False
        self._backoff = Backoff(0.5, 30.0, jitter=True)  # reset by a session that lasted
        self._connected_at = 0.0
        self._answered = False  # the broker sent a CONNACK (accepting or refusing) on the current connection
        self.reading_paused = False
        self.connected = asyncio.Event()
        #: Set once the broker granted our subscriptions on the current connection.
        self.subscribed = asyncio.Event()

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else clean_start,
            manual_ack=manual_ack,
            reconnect_on_failure=False,
        )
        if conn.mqtt_username:
            password = conn.mqtt_password.get_secret_value() if conn.mqtt_password else None
            client.username_pw_set(conn.mqtt_username, password)
        if conn.mqtt_tls:
            client.tls_set_context(conn.mqtt_tls_context())
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        client.on_connect = self._connect_cb
        client.on_disconnect = self._disconnect_cb
        client.on_subscribe = self._subscribe_cb
        client.on_publish = self._publish_cb
        self._acks: dict[int, asyncio.Future[None]] = {}
        if on_message is not None:
            client.on_message = lambda _c, _u, msg: on_message(msg)
        self.client = client

    async def start(self) -> None:
        """Start connecting in the background; ``connected`` is set once the broker accepted us."""
        self._loop = asyncio.get_running_loop()
        self._reconnect = self._loop.create_task(self._connect_forever())

    def ack(self, mid: int) -> None:
        self.client.ack(mid, 1)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Queue a publish; paho sends it when the socket is writable (and again after a reconnect for QoS 1)."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def publish_acked(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """QoS 1 publish whose future completes when the broker's PUBACK arrives (raises ``MqttUnavailable`` if
        the broker refused it). While disconnected, paho keeps the message and sends it after the reconnect."""
        assert self._loop is not None, "start() first"
        future: asyncio.Future[None] = self._loop.create_future()
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            future.set_exception(MqttUnavailable(f"publish to {topic} failed: {mqtt.error_string(info.rc)}"))
        elif info.is_published():
            future.set_result(None)
        else:
            self._acks[info.mid] = future
        return future

    def _publish_cb(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties | None) -> None:
        future = self._acks.pop(mid, None)
        if future is None or future.done():
            return
        if rc.is_failure:
            future.set_exception(MqttUnavailable(f"the broker refused the publish: {rc}"))
        else:
            future.set_result(None)

    def pause_reading(self) -> None:
        """Stop reading from the socket (the broker then holds messages for us, and TCP tells it to wait).

        Writes go on: acknowledgements still leave. paho's keepalive needs reading too (a PINGRESP unread within
        ``keepalive`` of its PINGREQ ends the connection), so a long pause should be broken by ``resume_reading``.
        A new connection reads again."""
        self.reading_paused = True
        sock = self.client.socket()
        if self._loop is not None and sock is not None:
            self._loop.remove_reader(sock)

    def resume_reading(self) -> None:
        self.reading_paused = False
        sock: Any = self.client.socket()
        if self._loop is not None and sock is not None and not self._closing:
            self._loop.add_reader(sock, self._readable, sock)

    async def close(self, *, with_will: bool = False) -> None:
        """Disconnect cleanly. With ``session_expiry_s`` > 0 the broker keeps our session and queues for us.
        ``with_will`` asks the broker to publish our will anyway (MQTT 5 reason code 0x04), as a lost link would."""
        self._closing = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self.client.socket() is not None:
            reason = ReasonCode(PacketTypes.DISCONNECT, identifier=4) if with_will and self._v5 else None
            self.client.disconnect(reasoncode=reason)
            for _ in range(50):
                if self.client.socket() is None:
                    break
                await asyncio.sleep(0.02)

    # -- connection management --------------------------------------------------------------------------------

    async def _connect_forever(self, *, back_off_first: bool = False) -> None:
        if back_off_first:  # lost soon after a connect: the broker may be refusing or kicking us
            await asyncio.sleep(self._backoff.next())
        while not self._closing:
            props = None
            if self._v5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = self._session_expiry_s
                props.ReceiveMaximum = self._receive_maximum
            self._answered = False
            try:
                rc = self.client.connect(
                    self._conn.mqtt_host,
                    self._conn.mqtt_port,
                    keepalive=KEEPALIVE_S,
                    clean_start=self._clean_start if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                    properties=props,
                )
                if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return
                if not self._lost_before_accepted():
                    logger.warning("MQTT connect to %s failed: %s", self._conn.mqtt_url, rc)
            except ssl.SSLCertVerificationError as exc:
                logger.error(
                    "MQTT broker %s: its TLS certificate is not trusted (%s); set SMARTCITY_MQTT_TLS_CA_FILE to the "
                    "CA that signed it, and make sure the certificate names %s; retrying in %.1f s",
                    self._conn.mqtt_url,
                    exc.verify_message,
                    self._conn.mqtt_host,
                    self._backoff.current,
                )
            except ssl.SSLError as exc:
                logger.error(
                    "MQTT broker %s: the TLS handshake failed (%s); is it a TLS listener?; retrying in %.1f s",
                    self._conn.mqtt_url,
                    exc,
                    self._backoff.current,
                )
            except (TimeoutError, OSError) as exc:
                logger.warning(
                    "MQTT broker %s unreachable: %s; retrying in %.1f s",
                    self._conn.mqtt_url,
                    exc,
                    self._backoff.current,
                )
            await asyncio.sleep(self._backoff.next())

    def _lost_before_accepted(self) -> bool:
        """Log and say whether a TLS connection was just closed before the broker's CONNACK: Mosquitto does that
        (after the TLS 1.3 handshake has completed on our side) when it requires a client certificate that we did
        not send or that its CA did not sign."""
        if not self._conn.mqtt_tls or self._answered:
            return False
        logger.error(
            "MQTT broker %s closed the TLS connection before accepting it: if it requires client certificates, "
            "ours is missing or not signed by its CA (SMARTCITY_MQTT_TLS_CERT_FILE=%s, SMARTCITY_MQTT_TLS_KEY_FILE=%s)",
            self._conn.mqtt_url,
            self._conn.mqtt_tls_cert_file,
            self._conn.mqtt_tls_key_file,
        )
        return True

    def _connect_cb(
        self, client: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        self._answered = True
        if rc.is_failure:
            logger.error("MQTT broker %s refused the connection: %s", self._conn.mqtt_url, rc)
            return
        logger.info("connected to MQTT %s (session present: %s)", self._conn.mqtt_url, flags.session_present)
        self._connected_at = time.monotonic()
        if self._subscriptions:
            client.subscribe(self._subscriptions)
        self.connected.set()
        if self._on_connected is not None:
            self._on_connected(flags.session_present)

    def _subscribe_cb(
        self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        refused = [str(code) for code in codes if code.is_failure]
        if refused:
            logger.error("MQTT broker refused our subscriptions %s: %s", self._subscriptions, refused)
            return
        self.subscribed.set()

    def _disconnect_cb(
        self, _c: mqtt.Client, _u: Any, _f: mqtt.DisconnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        accepted = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if self._on_disconnected is not None:
            self._on_disconnected()
        if self._closing or self._loop is None:
            return
        if self._reconnect is not None and not self._reconnect.done():
            return  # lost inside ``connect()`` itself: the running ``_connect_forever`` logs it and retries
        lasted = accepted and time.monotonic() - self._connected_at > 30
        if lasted:
            self._backoff.reset()  # it had been working: try again at once
        if not self._lost_before_accepted():
            logger.warning("MQTT connection to %s lost (%s); reconnecting", self._conn.mqtt_url, rc)
        self._reconnect = self._loop.create_task(self._connect_forever(back_off_first=not lasted))

    # -- paho socket callbacks -> asyncio ---------------------------------------------------------------------

    def _socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self.reading_paused = False
        self._loop.add_reader(sock, self._readable, sock)
        self._misc = self._loop.create_task(self._misc_loop())

    def _socket_close(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        if self._misc is not None:
            self._misc.cancel()

    def _readable(self, sock: socket.socket) -> None:
        """Read every packet already here, not one per wake-up.

        paho's ``loop_read`` handles one packet per call; under load, returning to the event loop between packets
        costs an epoll round per message. A TLS socket may also hold decrypted bytes that epoll cannot see.
        """
        client = self.client
        for _ in range(_MAX_PACKETS_PER_WAKE):
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or client.socket() is None:
                return
            if self.reading_paused:  # a handler paused us: the next packet stays with the broker
                return
            if isinstance(sock, ssl.SSLSocket):
                if not sock.pending():
                    return
                continue
            try:
                if not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    return  # EOF: the next loop_read reports the disconnect
            except OSError:  # BlockingIOError included: nothing more to read now
                return

    def _register_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, client.loop_write)

    def _unregister_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)
