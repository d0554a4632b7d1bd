"""Officers and their bearer tokens: who may see and act on which departments' alerts.

Tokens are configured, never hard-coded, and stored only as SHA-256 hashes (``officers.yaml``)::

    officers:
      - name: 李明
        departments: [fire]
        token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

``python -m alerts.officers <token>`` prints a hash to paste. An entry may give a stable ``id`` (e.g. a staff number):
what an officer made (a silence) is theirs by that id, never by the display name, which two officers may share.
Without one the id is derived from the token's hash, so it changes when the token does (an administrator can
still end what the old token made). ``SMARTCITY_API_TOKEN`` adds the all-departments
administrator (one machine). A request without a token is 401; an officer acting outside their departments is 403.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.contracts.catalogue import Department
from core.errors import ConfigError
from core.yamlfile import read_yaml


class Officer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str | None = Field(None, max_length=100, description="stable: what the officer made is theirs by this id")
    name: str = Field(min_length=1, max_length=100)
    departments: list[Department] = Field(min_length=1)
    admin: bool = False

    def sees(self, departments: list[Department] | list[str]) -> bool:
        return self.admin or bool(set(self.departments) & set(departments))

    def may_act_for(self, department: Department | str) -> bool:
        return self.admin or department in self.departments


class _Entry(Officer):
    id: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    officers: list[_Entry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids_unique(self) -> Self:
        ids = [e.id for e in self.officers if e.id is not None]
        if "admin" in ids:
            raise ValueError("id 'admin' is the administrator token's; give the officer another id")
        if len(ids) != len(set(ids)):
            raise ValueError(f"officer ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
        return self


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Officers:
    def __init__(self, entries: list[_Entry], admin_token: str | None) -> None:
        self._by_hash = {
            e.token_sha256: Officer(
                id=e.id or f"token:{e.token_sha256[:16]}", name=e.name, departments=e.departments, admin=e.admin
            )
            for e in entries
        }
        self._admin_hash = token_hash(admin_token) if admin_token else None

    @classmethod
    def load(cls, path: Path | None, admin_token: str | None) -> Officers:
        if path is None:
            return cls([], admin_token)
        try:
            parsed = _File.model_validate(read_yaml(path, ConfigError) or {})
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{path}: {where}") from exc
        return cls(parsed.officers, admin_token)

    def by_token(self, token: str) -> Officer | None:
        digest = token_hash(token)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Officer(id="admin", name="admin", departments=list(Department), admin=True)
        return self._by_hash.get(digest)  # a hash lookup leaks nothing about the token


if __name__ == "__main__":
    print(token_hash(sys.argv[1]))
