"""The silences and drill windows kept in memory: counted per department, and forgotten once long ended."""

from __future__ import annotations

from alerts.silences import DrillWindow, Matchers, Silence, Windows
from core.contracts.catalogue import Department

T0 = 1_763_900_000_000


def _silence(id_: str, ends_at: int, department: Department | None = Department.FIRE) -> Silence:
    matchers = Matchers(department=department) if department else Matchers(site_id="s")
    return Silence(
        id=id_, matchers=matchers, reason="r", starts_at=T0, ends_at=ends_at, created_by="李明", created_at=T0
    )


def test_silences_are_counted_per_department_until_they_end() -> None:
    w = Windows()
    for s in (_silence("a", T0 + 10), _silence("b", T0 + 20), _silence("c", T0 + 10, Department.WATER)):
        w.silences[s.id] = s
    w.silences["d"] = _silence("d", T0 + 10, None)
    assert w.silences_of(Department.FIRE, T0) == 2
    assert w.silences_of(Department.FIRE, T0 + 10) == 1, "one ended"
    assert w.silences_of(Department.WATER, T0) == 1
    assert w.silences_of(None, T0) == 1


def test_windows_ended_before_a_cutoff_are_dropped() -> None:
    w = Windows()
    w.silences["old"] = _silence("old", T0 + 10)
    w.silences["new"] = _silence("new", T0 + 1000)
    w.drills["drill"] = DrillWindow(
        id="drill", name="演练", site_ids=["s"], starts_at=T0, ends_at=T0 + 5, created_by="admin", created_at=T0
    )
    ended = w.ended_before(T0 + 500)
    assert sorted(x.id for x in ended) == ["drill", "old"]
    w.drop(ended)
    assert set(w.silences) == {"new"}
    assert not w.drills
