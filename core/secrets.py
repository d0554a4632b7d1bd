"""Passwords and tokens of the one-machine stack: generated once, kept in ``<data dir>/secrets.json`` (mode 0600).

They must survive restarts: the broker's dynamic-security file and the registry outlive a run, and so must the
credentials they were made with. ``SMARTCITY_MQTT_ADMIN_PASSWORD`` and ``SMARTCITY_API_TOKEN``, when set, win.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.contracts.catalogue import Department

GATEWAY_USERNAME = "smartcity-gateway"
API_USERNAME = "smartcity-api"
ADMIN_USERNAME = "admin"
SECRETS_FILE = "secrets.json"


def _new() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class StackSecrets:
    gateway_password: str = field(default_factory=_new)
    api_mqtt_password: str = field(default_factory=_new)
    admin_password: str = field(default_factory=_new)
    api_token: str = field(default_factory=_new)
    departments: dict[str, str] = field(default_factory=lambda: {d.value: _new() for d in Department})

    @classmethod
    def load(cls, path: Path, *, admin_password: str | None, api_token: str | None) -> StackSecrets:
        known = {f.name for f in fields(cls)}
        saved = json.loads(path.read_text()) if path.exists() else {}
        stored = cls(**{k: v for k, v in saved.items() if k in known})
        if admin_password:
            stored.admin_password = admin_password
        if api_token:
            stored.api_token = api_token
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".secrets-")  # created 0600
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(stored), f, indent=2)
        os.replace(name, path)  # whole or not at all, and never with an older, looser mode
        return stored


def saved_secrets(data_dir: Path) -> dict[str, Any]:
    """What ``<data dir>/secrets.json`` holds (``{}`` if there is none): the tools on the stack's own machine read
    its API token and the operator's MQTT password from it."""
    path = data_dir / SECRETS_FILE
    return dict(json.loads(path.read_text())) if path.exists() else {}
