"""The registry's SQLite store: create vs replace, filters, text search, sorts, paging, and it survives reopening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.contracts.catalogue import Department, DeviceKind
from core.contracts.device import Device
from devices.store import DeviceStore, Sort
from harness.builders import device


def _device(i: int, kind: str = "gas", site: str = "S1", departments: tuple[str, ...] = ("emergency",)) -> Device:
    return device(f"d-{i:04d}", kind, site=site, departments=departments)


def test_put_says_whether_new_and_replaces(tmp_path: Path) -> None:
    store = DeviceStore(tmp_path / "r.db")
    assert store.put(_device(1)) is True
    assert store.put(_device(1, site="S2")) is False
    got = store.get("d-0001")
    assert got is not None
    assert got.site_id == "S2"
    assert store.count() == 1


def test_filters_and_paging(tmp_path: Path) -> None:
    store = DeviceStore(tmp_path / "r.db")
    store.put_many(
        [_device(i, kind="water" if i % 2 else "gas", site=f"S{i % 3}",
                 departments=("water", "emergency") if i % 2 else ("emergency",)) for i in range(30)]
    )  # fmt: skip
    water = store.query(kind=DeviceKind.WATER, limit=5)
    assert water.total == 15
    assert [d.id for d in water.devices] == ["d-0001", "d-0003", "d-0005", "d-0007", "d-0009"]
    assert store.query(kind=DeviceKind.WATER, offset=10, limit=10).devices[-1].id == "d-0029"
    assert store.query(department=Department.WATER).total == 15
    assert store.query(department=Department.EMERGENCY).total == 30
    assert store.query(site_id="S0").total == 10
    assert store.query(ids={"d-0002", "d-0003", "nope"}).total == 2
    assert store.query(ids=set()).total == 0


def test_delete_and_reopen(tmp_path: Path) -> None:
    store = DeviceStore(tmp_path / "r.db")
    store.put_many([_device(i) for i in range(3)])
    assert store.delete("d-0001") is True
    assert store.delete("d-0001") is False
    store.close()
    again = DeviceStore(tmp_path / "r.db")
    assert [d.id for d in again.all()] == ["d-0000", "d-0002"]


def test_text_search_is_a_literal_case_insensitive_substring_of_id_site_id_or_site_name(tmp_path: Path) -> None:
    store = DeviceStore(tmp_path / "r.db")
    store.put_many(
        [
            device("gas-100", site="PS_01", site_name="坪山 100% 储气站"),
            device("gas-1x0", site="PSx01", site_name="Straße Nord"),
            device("Water-7", "water", site="R02", site_name="龙岗河水位站"),
        ]
    )

    def found(text: str) -> list[str]:
        return [d.id for d in store.query(text=text).devices]

    assert found("WATER") == ["Water-7"]
    assert found("r02") == ["Water-7"]
    assert found("龙岗河") == ["Water-7"]
    assert found("STRASSE") == ["gas-1x0"]  # folded beyond ASCII: ß is ss
    assert found("ps_") == ["gas-100"]  # _ is an underscore, not any character
    assert found("100%") == ["gas-100"]  # % is a percent sign, not anything
    assert found("%") == ["gas-100"]
    assert found("1_0") == []  # as a wildcard, 100 and 1x0
    assert found("\\") == []
    assert found("  ") == ["Water-7", "gas-100", "gas-1x0"]  # blank: no filter (ids in binary order)
    assert store.query(text="gas", kind=DeviceKind.WATER).total == 0
    assert store.query(text="gas", limit=1).total == 2


def test_sorts_page_through_every_device_once_with_ties_by_id(tmp_path: Path) -> None:
    store = DeviceStore(tmp_path / "r.db")
    store.put_many([_device(i, kind="water" if i % 3 else "gas", site=f"S{(7 - i) % 4}") for i in range(10)])
    store.put(_device(4, kind="water", site="S0"))  # the last changed

    def ids(sort: Sort) -> list[str]:
        return [d.id for offset in range(0, 10, 3) for d in store.query(sort=sort, offset=offset, limit=3).devices]

    everyone = [f"d-{i:04d}" for i in range(10)]
    assert ids(Sort.ID) == everyone
    assert ids(Sort.ID_DESC) == everyone[::-1]
    by_site = [d.id for d in sorted(store.all(), key=lambda d: (d.site_id, d.id))]
    assert ids(Sort.SITE) == by_site
    assert ids(Sort.SITE_DESC) == by_site[::-1]
    assert ids(Sort.KIND) == ["d-0000", "d-0003", "d-0006", "d-0009", "d-0001", "d-0002", "d-0004", "d-0005",
                              "d-0007", "d-0008"]  # fmt: skip
    assert ids(Sort.UPDATED_DESC)[0] == "d-0004"
    assert ids(Sort.UPDATED)[-1] == "d-0004"
    assert [s.value for s in Sort] == ["id", "-id", "site", "-site", "kind", "-kind", "updated", "-updated"]


def test_a_large_id_set_is_one_parameter(tmp_path: Path) -> None:
    """The status filter passes the ids of every device with that status: more than SQLite's 32,766 variables."""
    store = DeviceStore(tmp_path / "r.db")
    store.put_many([_device(i) for i in range(5)])
    ids = {f"d-{i:04d}" for i in range(40_000)}
    page = store.query(ids=ids, sort=Sort.ID_DESC, limit=2)
    assert (page.total, [d.id for d in page.devices]) == (5, ["d-0004", "d-0003"])


def test_a_file_from_before_text_search_gets_its_search_column(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    old = sqlite3.connect(path)
    with old:
        old.executescript(
            "CREATE TABLE devices (id TEXT PRIMARY KEY, kind TEXT NOT NULL, site_id TEXT NOT NULL, departments TEXT "
            "NOT NULL, record TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);"
            "CREATE INDEX devices_kind ON devices (kind); CREATE INDEX devices_site ON devices (site_id);"
        )
        d = device("gas-7", site="S9", site_name="Pingshan Depot")
        old.execute(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?, 0, 0)", (d.id, "gas", "S9", ",emergency,", d.model_dump_json())
        )
    old.close()
    store = DeviceStore(path)
    assert [x.id for x in store.query(text="pingshan").devices] == ["gas-7"]
    assert store.query(text="s9", sort=Sort.SITE).total == 1
    store.close()
    assert DeviceStore(path).query(text="GAS-7").total == 1  # reopened: nothing added twice
