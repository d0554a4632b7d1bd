"""Officers and their bearer tokens: who may see and act on which departments' alerts.

Tokens are configured, never hard-coded, and stored only as SHA-256 hashes (``officers.yaml``)::

    officers:
      - name: 李明
        departments: [fire]
        token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

``python -m alerts.officers <token>`` prints a hash to paste. ``SMARTCITY_API_TOKEN`` adds the all-departments
administrator (one machine). A request without a token is 401; an officer acting outside their departments is 403.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smartcity.contracts.catalogue import Department
from smartcity.errors import ConfigError
from smartcity.yamlfile import read_yaml


class Officer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    departments: list[Department] = Field(min_length=1)
    admin: bool = False

    def sees(self, departments: list[Department] | list[str]) -> bool:
        return self.admin or bool(set(self.departments) & set(departments))

    def may_act_for(self, department: Department | str) -> bool:
        return self.admin or department in self.departments


class _Entry(Officer):
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    officers: list[_Entry] = Field(default_factory=list)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Officers:
    def __init__(self, entries: list[_Entry], admin_token: str | None) -> None:
        self._by_hash = {
            e.token_sha256: Officer(name=e.name, departments=e.departments, admin=e.admin) for e in entries
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
            return Officer(name="admin", departments=list(Department), admin=True)
        return self._by_hash.get(digest)  # a hash lookup leaks nothing about the token


if __name__ == "__main__":
    print(token_hash(sys.argv[1]))
