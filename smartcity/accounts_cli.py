"""``smartcity mqtt-accounts``: a deployment's MQTT service accounts, made in Mosquitto's dynamic-security plugin.

compose.yaml runs it once per ``docker compose up``, after the broker is healthy and before the gateways and the
API start. It logs in as the plugin's administrator ``smartcity-control`` (made by deploy/mosquitto/init.sh) and
makes, or brings up to date, one account per service with the same names and ACLs as the one-machine stack
(``core.secrets``): ``admin`` (the operator), ``smartcity-gateway``, ``smartcity-api`` and
``dept-<department>`` for each department's officers. Running it again changes nothing but what the environment
changed, so rotating a service password is editing ``.env`` and running it again.

The administrator is not ``admin`` and is never among the accounts made here: the plugin disconnects a client
whose password or roles change, so a client updating its own account is thrown out mid-command (and, re-sending
that command on reconnect, thrown out again for ever).

Unlike the one-machine stack, nothing is generated here: a deployment keeps its passwords where it keeps its other
secrets, and every one of them comes from the environment.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from core.contracts.catalogue import Department
from core.secrets import ADMIN_USERNAME, API_USERNAME, GATEWAY_USERNAME
from core.settings import MqttConnection
from devices.mqtt_accounts import (
    CONTROL_TOPIC,
    RESPONSE_TOPIC,
    AccountBackend,
    AccountError,
    Acl,
    MqttAccounts,
    api_acls,
    department_acls,
    gateway_acls,
    operator_acls,
)

logger = logging.getLogger(__name__)

CONTROL_USERNAME = "smartcity-control"  # the plugin's administrator: deploy/mosquitto/init.sh makes it

Password = Annotated[SecretStr, Field(min_length=12)]


class AccountsSettings(MqttConnection):
    """What ``smartcity mqtt-accounts`` reads: where the broker is and every account's password.

    It always connects as ``smartcity-control`` with ``SMARTCITY_MQTT_CONTROL_PASSWORD``;
    ``SMARTCITY_MQTT_USERNAME`` and ``SMARTCITY_MQTT_PASSWORD`` (the account a service runs as) play no part. A
    refused value is never echoed in the error (``hide_input_in_errors``): it is a password, and compose logs are
    widely read.
    """

    model_config = SettingsConfigDict(hide_input_in_errors=True)  # merged with the prefix and freezing inherited

    mqtt_control_password: Password = Field(
        description=f"{CONTROL_USERNAME}: the plugin's administrator, as mosquitto-init made it (deploy/mosquitto)"
    )
    mqtt_admin_password: Password = Field(description=f"{ADMIN_USERNAME}: the operator (reads and writes every topic)")
    gateway_mqtt_password: Password = Field(description=f"{GATEWAY_USERNAME}: the ingest gateways' account")
    api_mqtt_password: Password = Field(description=f"{API_USERNAME}: the API and alerts service's account")
    department_passwords: dict[Department, Password] = Field(
        description='JSON, one password per department: {"emergency": "...", "fire": "...", ...}'
    )
    mqtt_accounts_timeout_s: float = Field(60.0, gt=0, description="how long to wait for the broker's answers")

    @field_validator("department_passwords")
    @classmethod
    def _every_department(cls, value: dict[Department, SecretStr]) -> dict[Department, SecretStr]:
        missing = [d.value for d in Department if d not in value]
        if missing:
            raise ValueError(f"every department needs an account; no password for: {', '.join(missing)}")
        return value

    def control(self) -> MqttConnection:
        return MqttConnection(
            mqtt_url=self.mqtt_url, mqtt_username=CONTROL_USERNAME, mqtt_password=self.mqtt_control_password
        )


def registrar_acls() -> list[Acl]:
    """The API issues each device's account itself (``SMARTCITY_MQTT_ACCOUNTS=dynsec``), on the one MQTT
    connection it also publishes alerts with, so its account may send plugin commands and read their answers.

    That is the plugin's whole power, but it keeps the administrator's and the operator's passwords out of the
    API's container, and the broker's log names the API for each device it makes.
    """
    # Receiving is allowed by default, yet the plugin's answers reach no one without this grant (Mosquitto 2.0.11;
    # tests/integration/test_compose_mosquitto.py fails without it).
    return [
        Acl("publishClientSend", CONTROL_TOPIC),
        Acl("subscribePattern", RESPONSE_TOPIC),
        Acl("publishClientReceive", RESPONSE_TOPIC),
    ]


def service_accounts(settings: AccountsSettings) -> list[tuple[str, SecretStr, list[Acl]]]:
    """Username, password and ACLs of every account, in the order they are made."""
    return [
        (ADMIN_USERNAME, settings.mqtt_admin_password, operator_acls()),
        (GATEWAY_USERNAME, settings.gateway_mqtt_password, gateway_acls()),
        (API_USERNAME, settings.api_mqtt_password, api_acls() + registrar_acls()),
        *(
            (f"dept-{d.value}", settings.department_passwords[d], department_acls(d.value))
            for d in Department  # the catalogue's order, so the log reads the same on every run
        ),
    ]


async def ensure_deployment_accounts(accounts: AccountBackend, settings: AccountsSettings) -> list[str]:
    """Create or update every service account through ``accounts``; returns the usernames, in order."""
    plan = service_accounts(settings)
    await accounts.start()
    try:
        for username, password, acls in plan:
            await accounts.ensure_account(username, password.get_secret_value(), acls)
            logger.info("MQTT account %s is up to date", username)
    finally:
        await accounts.close()
    return [username for username, _password, _acls in plan]


def run_mqtt_accounts(settings: AccountsSettings) -> list[str]:
    """``smartcity mqtt-accounts``: the plugin on ``SMARTCITY_MQTT_URL``, as ``smartcity-control``.

    A broker that never answers (down, or refusing the administrator: the plugin keeps the password its file was
    first made with) is an ``AccountError`` saying so, instead of a bare timeout.
    """
    accounts = MqttAccounts(settings.control(), timeout_s=settings.mqtt_accounts_timeout_s)
    try:
        return asyncio.run(ensure_deployment_accounts(accounts, settings))
    except TimeoutError as exc:
        raise AccountError(
            f"no answer from the dynamic-security plugin at {settings.mqtt_url} as {CONTROL_USERNAME} within "
            f"{settings.mqtt_accounts_timeout_s:g} s: is the broker up, and is SMARTCITY_MQTT_CONTROL_PASSWORD the "
            "password its dynamic-security file was made with?"
        ) from exc
