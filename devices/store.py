"""The registry's durable source on one machine: device records in a SQLite file.

Kafka's compacted ``devices`` topic is how the other services learn about devices, but the one-machine broker
forgets everything when it stops; this file does not, and the registry republishes every record from it at start.
In production the same file (or the compacted topic on a replicated Kafka) is the source.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.contracts.catalogue import Department, DeviceKind
from core.contracts.device import Device

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    site_id TEXT NOT NULL,
    departments TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_kind ON devices (kind);
CREATE INDEX IF NOT EXISTS devices_site ON devices (site_id);
"""


@dataclass(frozen=True, slots=True)
class Page:
    devices: list[Device]
    total: int


class DeviceStore:
    """CRUD on device records. One writer (the registry service); safe to read from anywhere."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def put(self, device: Device) -> bool:
        """Insert or replace; True when the device is new."""
        return self.put_many([device])[0]

    def put_many(self, devices: Iterable[Device]) -> list[bool]:
        """Insert or replace many in one transaction; for each, whether it was new."""
        now = time.time()
        created: list[bool] = []
        with self._db:  # one transaction: all or nothing
            for d in devices:
                existed = self._db.execute("SELECT 1 FROM devices WHERE id = ?", (d.id,)).fetchone() is not None
                self._db.execute(
                    "INSERT INTO devices (id, kind, site_id, departments, record, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, "
                    "site_id = excluded.site_id, departments = excluded.departments, record = excluded.record, "
                    "updated_at = excluded.updated_at",
                    (d.id, d.kind.value, d.site_id, _departments(d.departments), d.model_dump_json(), now, now),
                )
                created.append(not existed)
        return created

    def get(self, device_id: str) -> Device | None:
        row = self._db.execute("SELECT record FROM devices WHERE id = ?", (device_id,)).fetchone()
        return Device.model_validate_json(row[0]) if row else None

    def delete(self, device_id: str) -> bool:
        with self._db:
            return self._db.execute("DELETE FROM devices WHERE id = ?", (device_id,)).rowcount > 0

    def query(
        self,
        *,
        kind: DeviceKind | None = None,
        site_id: str | None = None,
        department: Department | None = None,
        ids: set[str] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page:
        """Devices in id order, filtered; ``total`` counts every match, not just this page."""
        where, args = ["1 = 1"], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind.value)
        if site_id is not None:
            where.append("site_id = ?")
            args.append(site_id)
        if department is not None:
            where.append("departments LIKE ?")
            args.append(f"%,{department.value},%")
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})" if ids else "0 = 1")
            args.extend(sorted(ids))
        clause = " AND ".join(where)
        total = self._db.execute(f"SELECT COUNT(*) FROM devices WHERE {clause}", args).fetchone()[0]  # noqa: S608
        rows = self._db.execute(
            f"SELECT record FROM devices WHERE {clause} ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
            [*args, limit, offset],
        ).fetchall()
        return Page([Device.model_validate_json(r[0]) for r in rows], total)

    def all(self) -> list[Device]:
        return [Device.model_validate_json(r[0]) for r in self._db.execute("SELECT record FROM devices ORDER BY id")]

    def intervals(self) -> list[tuple[str, float]]:
        """(id, reporting interval) of every device: what health counts need, read without parsing records."""
        rows = self._db.execute("SELECT id, json_extract(record, '$.interval_s') FROM devices")
        return [(str(r[0]), float(r[1])) for r in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM devices").fetchone()[0])


def _departments(departments: list[Department]) -> str:
    """Stored as ",a,b," so that one department matches with LIKE '%,a,%'."""
    return "," + ",".join(d.value for d in departments) + ","
