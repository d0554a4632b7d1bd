"""The routing table and the officers file: defaults as in design.md, bad files refused with file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.officers import Officers, token_hash
from alerts.routing import RoutingError, load_routing
from core.contracts.catalogue import Department, Level
from core.contracts.finding import Hazard
from core.errors import ConfigError

E, F, W, H, C = Department.EMERGENCY, Department.FIRE, Department.WATER, Department.HOUSING, Department.COMMAND


@pytest.mark.parametrize(
    ("hazard", "level", "expected"),
    [
        (Hazard.GAS, Level.BLUE, [E]),
        (Hazard.FIRE, Level.ORANGE, [F]),
        (Hazard.FIRE, Level.RED, [F, E]),
        (Hazard.WATER, Level.YELLOW, [W]),
        (Hazard.WATER, Level.ORANGE, [W, E]),
        (Hazard.STRUCTURAL, Level.ORANGE, [H]),
        (Hazard.STRUCTURAL, Level.RED, [H, E]),
        (Hazard.DEVICE, Level.BLUE, [W]),
    ],
)
def test_default_routes_follow_the_design(hazard: Hazard, level: Level, expected: list[Department]) -> None:
    assert load_routing().departments(hazard, level, "any", own=[W]) == expected


def test_escalation_defaults_and_the_command_centre() -> None:
    routing = load_routing()
    assert routing.policy(Level.RED).after_s == 120
    assert all(routing.policy(level).after_s == 600 for level in (Level.ORANGE, Level.YELLOW, Level.BLUE))
    assert routing.departments(Hazard.GAS, Level.RED, "gas.ch4", [], escalations=1) == [E, C]


def test_an_unrouted_alert_goes_to_the_devices_own_departments(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("version: 1\nroutes:\n  - {hazard: gas, departments: [emergency]}\n")
    assert load_routing(path).departments(Hazard.FIRE, Level.RED, "fire.heat", [F]) == [F]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("version: 1\nroutes:\n  - {hazard: lava, departments: [fire]}\n", "routes.0.hazard"),
        ("version: 1\nroutes:\n  - {hazard: gas, departments: [police]}\n", "routes.0.departments.0"),
        ("version: 1\nroutes: []\nescalation:\n  red: {after_s: 0, repeat_s: 1}\n", "escalation.red.after_s"),
        ("version: 2\nroutes: []\n", "version"),
        ("routes: [\n", "not YAML"),
        (
            "version: 1\nroutes: []\nincidents:\n  families:\n"
            "    a: {hazards: [gas, fire, water, structural, device]}\n    b: {hazards: [gas]}\n",
            "incidents: Value error, hazard gas is in families 'a' and 'b'",
        ),
        (
            "version: 1\nroutes: []\nincidents:\n  families:\n    a: {hazards: [gas]}\n",
            "every hazard needs a family; missing: water, fire, structural, device",
        ),
        ("version: 1\nroutes: []\nincidents: {window_s: -1}\n", "incidents.window_s"),
        (
            "version: 1\nroutes: []\nincidents:\n  families:\n    gas: {hazards: [gas], radius_m: -5}\n",
            "incidents.families.gas.radius_m",
        ),
    ],
)
def test_bad_routing_files_name_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(body)
    with pytest.raises(RoutingError) as err:
        load_routing(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_officers_by_token_hash_and_the_admin(tmp_path: Path) -> None:
    path = tmp_path / "officers.yaml"
    path.write_text(f"officers:\n  - name: 王\n    departments: [water]\n    token_sha256: {token_hash('w-token')}\n")
    officers = Officers.load(path, "admin-token")
    water = officers.by_token("w-token")
    assert water is not None
    assert (water.name, water.departments, water.admin) == ("王", [W], False)
    assert water.sees([W, E])
    assert not water.sees([F])
    admin = officers.by_token("admin-token")
    assert admin is not None
    assert admin.admin
    assert admin.sees([F])
    assert officers.by_token("nope") is None
    assert "w-token" not in path.read_text(), "only hashes are stored"


def test_a_bad_officers_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "officers.yaml"
    path.write_text("officers:\n  - name: x\n    departments: []\n    token_sha256: abc\n")
    with pytest.raises(ConfigError) as err:
        Officers.load(path, None)
    assert "officers.0.departments" in str(err.value)
    assert "officers.0.token_sha256" in str(err.value)


def test_officers_have_stable_ids_that_are_not_their_names(tmp_path: Path) -> None:
    path = tmp_path / "officers.yaml"
    path.write_text(
        "officers:\n"
        f"  - {{name: 李明, departments: [fire], id: F1024, token_sha256: {token_hash('one-token')}}}\n"
        f"  - {{name: 李明, departments: [fire], token_sha256: {token_hash('two-token')}}}\n"
    )
    officers = Officers.load(path, "admin-token-long")
    one, two, admin = (officers.by_token(t) for t in ("one-token", "two-token", "admin-token-long"))
    assert one is not None
    assert two is not None
    assert admin is not None
    assert one.id == "F1024"
    assert (two.id or "").startswith("token:")
    assert two.id != one.id
    assert admin.id == "admin"


@pytest.mark.parametrize(
    ("ids", "message"),
    [(("a", "a"), "officer ids must be unique: ['a']"), (("admin", "b"), "id 'admin' is the administrator")],
)
def test_officer_ids_are_unique_and_not_the_administrators(tmp_path: Path, ids: tuple[str, str], message: str) -> None:
    path = tmp_path / "officers.yaml"
    path.write_text(
        "officers:\n"
        + "".join(
            f"  - {{name: n, departments: [fire], id: {i}, token_sha256: {token_hash(f't{n}')}}}\n"
            for n, i in enumerate(ids)
        )
    )
    with pytest.raises(ConfigError) as err:
        Officers.load(path, None)
    assert message in str(err.value)
