"""The registry's SQLite store: create vs replace, filters, paging, and it survives reopening."""

from __future__ import annotations

from pathlib import Path

from core.contracts.catalogue import Department, DeviceKind
from core.contracts.device import Device
from devices.store import DeviceStore
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
