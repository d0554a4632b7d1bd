"""Who hears about an alert outside MQTT: each department's webhooks and e-mail addresses, and the SMTP relay.

Read once at start-up from a YAML file (``SMARTCITY_ALERTS_CONTACTS_FILE``; see ``alerts/contacts.example.yaml``)::

    version: 1
    smtp: {host: smtp.example.gov.cn, port: 587, username: alerts, password: "${SMTP_PASSWORD}",
           starttls: true, sender: "SmartCity 预警 <alerts@example.gov.cn>"}
    departments:
      emergency:
        webhooks:
          - {url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${WECOM_EMERGENCY_KEY}", format: wecom}
        email:
          - {to: duty@emergency.example.gov.cn, min_level: orange}

Guarantees:

- The file is validated as a whole before anything is sent; every problem is reported at once, each naming the file
  and the field, e.g. ``contacts.yaml: field 'departments.fire.webhooks.0.format': Input should be 'json', 'wecom'
  or 'dingtalk'``. A typo cannot silently drop a department's notifications.
- Secrets (webhook keys in URLs, signing secrets, the SMTP password) need not be written in the file: ``${NAME}``
  in any string is replaced from the environment when the file is loaded (at the entry point, never at import), and
  an unset variable is an error naming the field. Signing secrets and the password are ``SecretStr``.
- A webhook's ``target`` (what logs, metrics and undelivered records show) is ``scheme://host/path#<8 hex>``: the
  query, where WeCom and DingTalk keep the robot's key, never appears, and the short hash of the full URL still
  tells two robots on the same host apart.
- Filters are per contact: ``events`` (default: every event) and ``min_level`` (default: every level).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from core.contracts.alert import Alert, AlertEvent
from core.contracts.catalogue import LEVEL_RANK, Department, Level
from core.contracts.incident import Incident, IncidentEvent
from core.errors import ConfigError
from core.yamlfile import read_yaml

logger = logging.getLogger(__name__)

_ENV_REF: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# One address, no display name, no whitespace or line breaks (which could inject headers into a message).
_ADDRESS: Final = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


class ContactsError(ConfigError):
    """A contacts file that cannot be used; ``problems`` lists each as ``'file: field ...: message'``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class WebhookFormat(StrEnum):
    JSON = "json"  # the alert message itself, signed with HMAC-SHA256 (our own receivers, integrations)
    WECOM = "wecom"  # 企业微信 group robot, markdown
    DINGTALK = "dingtalk"  # 钉钉 custom robot, markdown, optionally signed (加签)


class _Filtered(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    per: Literal["incident", "alert"] = Field(
        "incident",
        description="what this contact is told of: each incident's messages, one conversation per hazard event "
        "(people; the default), or every alert message (an integration that wants each alert, as before issue 21)",
    )
    events: list[AlertEvent] | None = Field(None, description="per alert: only these events (default: all)")
    incident_events: list[IncidentEvent] | None = Field(
        None, description="per incident: only these events (default: all)"
    )
    min_level: Level | None = Field(None, description="only alerts at this level or higher (default: all)")

    @model_validator(mode="after")
    def _filters_fit(self) -> Self:
        if self.per == "incident" and self.events is not None:
            raise ValueError(
                "events filters alert messages, which this contact does not get (per: incident, the default): "
                "use incident_events, or per: alert for every alert message"
            )
        if self.per == "alert" and self.incident_events is not None:
            raise ValueError("incident_events filters incident messages; this contact gets alert messages (per: alert)")
        return self

    def accepts(self, message: Alert | Incident) -> bool:
        if isinstance(message, Alert):
            if self.per != "alert" or (self.events is not None and message.event not in self.events):
                return False
        elif self.per != "incident" or (self.incident_events is not None and message.event not in self.incident_events):
            return False
        return self.min_level is None or LEVEL_RANK[message.level] >= LEVEL_RANK[self.min_level]


class Webhook(_Filtered):
    url: str = Field(description="http(s) URL; WeCom and DingTalk put the robot's key in the query")
    format: WebhookFormat = WebhookFormat.JSON
    secret: SecretStr | None = Field(None, description="json: HMAC key; dingtalk: the robot's SEC... signing secret")
    timeout_s: float = Field(10.0, gt=0, le=120, description="whole-request timeout for this webhook")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _wecom_unsigned(self) -> Webhook:
        if self.format is WebhookFormat.WECOM and self.secret is not None:
            raise ValueError("wecom robots are not signed: remove 'secret' (the key is in the URL)")
        return self

    @property
    def target(self) -> str:
        """Names this webhook in logs without its query (robot keys) or credentials."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:8]
        return f"{parts.scheme}://{host}{port}{parts.path or '/'}#{digest}"


class EmailRecipient(_Filtered):
    to: str = Field(description="one address, e.g. duty@fire.example.gov.cn")

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError("expected one e-mail address such as duty@example.gov.cn")
        return value


class SmtpSettings(BaseModel):
    """The relay every alert e-mail goes through. ``tls``: TLS from the first byte (port 465); ``starttls``:
    upgrade a plain connection (port 587); neither: plain SMTP (a local relay, tests)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    tls: bool = False
    sender: str = Field(min_length=3, description="From: an address, or 'Name <address>'")
    timeout_s: float = Field(30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpSettings:
        if self.tls and self.starttls:
            raise ValueError("choose one of 'tls' (implicit TLS, port 465) and 'starttls' (port 587)")
        if (self.username is None) != (self.password is None):
            raise ValueError("'username' and 'password' go together")
        return self


class DepartmentContacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    webhooks: list[Webhook] = Field(default_factory=list)
    email: list[EmailRecipient] = Field(default_factory=list)


class Contacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    smtp: SmtpSettings | None = None
    departments: dict[Department, DepartmentContacts] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _smtp_when_mailing(self) -> Contacts:
        mailing = sorted(d.value for d, c in self.departments.items() if c.email)
        if mailing and self.smtp is None:
            raise ValueError(f"departments {', '.join(mailing)} have e-mail addresses but there is no 'smtp' block")
        return self

    def webhooks(self, department: str) -> list[Webhook]:
        contacts = self.departments.get(Department(department)) if department in _DEPARTMENTS else None
        return list(contacts.webhooks) if contacts else []

    def emails(self, department: str) -> list[EmailRecipient]:
        contacts = self.departments.get(Department(department)) if department in _DEPARTMENTS else None
        return list(contacts.email) if contacts else []

    def all_webhooks(self) -> Iterator[Webhook]:
        for contacts in self.departments.values():
            yield from contacts.webhooks


_DEPARTMENTS: Final = frozenset(d.value for d in Department)


def parse_contacts(data: Any, source: str, env: Mapping[str, str] | None = None) -> Contacts:
    """Validate already-parsed YAML; ``source`` names the file in errors. ``env`` defaults to ``os.environ``."""
    if data is None:
        return Contacts()
    problems: list[str] = []
    expanded = _expand(data, os.environ if env is None else env, (), problems, source)
    try:
        contacts = Contacts.model_validate(expanded)
    except ValidationError as exc:
        problems.extend(_problems(exc, source))
    if problems:
        raise ContactsError(problems)
    return contacts


def load_contacts(path: Path | None, env: Mapping[str, str] | None = None) -> Contacts:
    """The contacts in ``path`` (None: nobody, only MQTT and the console are notified)."""
    if path is None:
        return Contacts()
    data = read_yaml(path, lambda problem: ContactsError([problem]))
    contacts = parse_contacts(data, path.name, env)
    logger.info(
        "alert contacts loaded from %s: %d webhooks, %d e-mail addresses",
        path,
        sum(len(c.webhooks) for c in contacts.departments.values()),
        sum(len(c.email) for c in contacts.departments.values()),
    )
    return contacts


def _expand(value: Any, env: Mapping[str, str], loc: tuple[str | int, ...], problems: list[str], source: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(f"{source}: field {_dotted(loc)!r}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, (*loc, str(k)), problems, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, (*loc, i), problems, source) for i, v in enumerate(value)]
    return value


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _problems(exc: ValidationError, source: str) -> Iterator[str]:
    for error in exc.errors(include_url=False):
        field = _dotted(tuple(p for p in error["loc"] if isinstance(p, str | int)))
        if field.endswith(".[key]"):
            field = field.removesuffix(".[key]")
        message = error["msg"].removeprefix("Value error, ")
        yield f"{source}: field {field!r}: {message}" if field else f"{source}: {message}"
