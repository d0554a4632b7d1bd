"""The registry's durable source on one machine: device records in a SQLite file.

Kafka's compacted ``devices`` topic is how the other services learn about devices, but the one-machine broker
forgets everything when it stops; this file does not, and the registry republishes every record from it at start.
In production the same file (or the compacted topic on a replicated Kafka) is the source.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

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
    updated_at REAL NOT NULL,
    search TEXT NOT NULL DEFAULT ''
);
"""
# Each sort is one index walked in order (``id``: the primary key's), with the filters applied on the way, so a page
# costs its offset plus its limit in index entries, not a sort of the whole table. (kind, id) and (site_id, id) also
# serve the ``kind`` and ``site`` filters; they replace the single-column indexes of the first schema.
_INDEXES = """
DROP INDEX IF EXISTS devices_kind;
DROP INDEX IF EXISTS devices_site;
CREATE INDEX IF NOT EXISTS devices_by_kind ON devices (kind, id);
CREATE INDEX IF NOT EXISTS devices_by_site ON devices (site_id, id);
CREATE INDEX IF NOT EXISTS devices_by_updated ON devices (updated_at, id);
"""


class Sort(StrEnum):
    """The order of a query's devices: by id, site id, kind or last change (``updated``); ``-`` first: descending.
    Ties go by id, so paging through a sort neither repeats nor skips a device."""

    ID = "id"
    ID_DESC = "-id"
    SITE = "site"
    SITE_DESC = "-site"
    KIND = "kind"
    KIND_DESC = "-kind"
    UPDATED = "updated"
    UPDATED_DESC = "-updated"


_SORT_COLUMNS: Final = {
    "id": ("id",),
    "site": ("site_id", "id"),
    "kind": ("kind", "id"),
    "updated": ("updated_at", "id"),
}


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
            self._add_search_column()
            self._db.executescript(_INDEXES)

    def _add_search_column(self) -> None:
        """A file written before text search has no ``search`` column: add it and fill it from the records."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(devices)")}
        if "search" in columns:
            return
        self._db.execute("ALTER TABLE devices ADD COLUMN search TEXT NOT NULL DEFAULT ''")
        rows = self._db.execute("SELECT id, site_id, json_extract(record, '$.site_name') FROM devices").fetchall()
        self._db.executemany("UPDATE devices SET search = ? WHERE id = ?", [(_search(*r), r[0]) for r in rows])

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
                    "INSERT INTO devices (id, kind, site_id, departments, record, created_at, updated_at, search) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, "
                    "site_id = excluded.site_id, departments = excluded.departments, record = excluded.record, "
                    "updated_at = excluded.updated_at, search = excluded.search",
                    (
                        d.id,
                        d.kind.value,
                        d.site_id,
                        _departments(d.departments),
                        d.model_dump_json(),
                        now,
                        now,
                        _search(d.id, d.site_id, d.site_name),
                    ),
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
        text: str | None = None,
        sort: Sort = Sort.ID,
        offset: int = 0,
        limit: int = 100,
    ) -> Page:
        """Devices filtered and in ``sort``'s order; ``total`` counts every match, not just this page. ``text``:
        a case-insensitive substring of the id, the site id or the site name, matched literally (``%`` and ``_``
        are characters, not wildcards); blank is no filter. ``ids`` is bound as one JSON array, so a set of any
        size (every offline device of 100,000) is one parameter, not one each (SQLite allows 32,766)."""
        where: list[str] = ["1 = 1"]
        args: list[str | int] = []
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
            where.append("id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(list(ids)))
        if text is not None and (needle := text.strip().casefold()):
            where.append(r"search LIKE ? ESCAPE '\'")
            args.append(f"%{_escape_like(needle)}%")
        clause = " AND ".join(where)
        descending = sort.value.startswith("-")
        order = ", ".join(f"{c} DESC" if descending else c for c in _SORT_COLUMNS[sort.value.removeprefix("-")])
        total = self._db.execute(f"SELECT COUNT(*) FROM devices WHERE {clause}", args).fetchone()[0]  # noqa: S608
        rows = self._db.execute(
            f"SELECT record FROM devices WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
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


def _search(device_id: str, site_id: str, site_name: str) -> str:
    """What text search looks in: the three fields case-folded in Python (SQLite's own LIKE and lower() fold ASCII
    only), one a line, so that a search matches within one field."""
    return "\n".join(field.casefold() for field in (device_id, site_id, site_name))


def _escape_like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (with ``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _departments(departments: list[Department]) -> str:
    """Stored as ",a,b," so that one department matches with LIKE '%,a,%'."""
    return "," + ",".join(d.value for d in departments) + ","
