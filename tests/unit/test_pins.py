"""The tools that judge the code are pinned, so CI's verdict changes only when a commit changes it.

pyproject.toml pins them exactly; constraints.txt locks every package .venv holds; scripts/setup.sh installs with
it; and the tools installed here are the pinned ones (what CI runs after `make setup`).
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
JUDGES = ("ruff", "mypy", "types-pyyaml", "pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "import-linter")
REQUIREMENT = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^]]*\])?\s*(.*)")


def _name(name: str) -> str:
    """PEP 503: ``types-PyYAML``, ``types_pyyaml`` and ``Types.PyYAML`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(lines: list[str]) -> dict[str, str]:
    found = (REQUIREMENT.fullmatch(line.split("#", 1)[0].split(";", 1)[0].strip()) for line in lines)
    return {_name(m.group(1)): m.group(2).replace(" ", "") for m in found if m}


DEV = _requirements(PYPROJECT["project"]["optional-dependencies"]["dev"])
RUNTIME = _requirements(PYPROJECT["project"]["dependencies"])
LOCK = _requirements([line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.strip()])


@pytest.mark.parametrize("tool", JUDGES)
def test_each_judging_tool_is_pinned_exactly_in_pyproject(tool: str) -> None:
    assert tool in DEV, f"{tool} is not a dev dependency"
    assert re.fullmatch(r"==[\w.]+", DEV[tool]), f"{tool}{DEV[tool]} in pyproject.toml: pin one version (==)"


def test_the_lock_pins_every_package_to_one_version() -> None:
    loose = {name: spec for name, spec in LOCK.items() if not re.fullmatch(r"==[\w.+!]+", spec)}
    assert not loose, f"constraints.txt must pin with == only: {loose}"


def test_the_lock_covers_every_dependency_and_agrees_with_pyproject() -> None:
    missing = (DEV.keys() | RUNTIME.keys()) - LOCK.keys()
    assert not missing, f"constraints.txt does not lock {sorted(missing)}"
    for tool in JUDGES:
        assert LOCK[tool] == DEV[tool], f"{tool}: pyproject.toml says {DEV[tool]}, constraints.txt {LOCK[tool]}"


def test_setup_installs_with_the_lock_and_reinstalls_when_it_changes() -> None:
    setup = (ROOT / "scripts/setup.sh").read_text()
    installs = [line for line in setup.splitlines() if "pip install" in line and "-e" in line]
    assert installs, "scripts/setup.sh installs the project"
    assert all("-c constraints.txt" in line for line in installs), installs
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^\$\(VENV\)/\.installed:(.*)$", makefile, re.M)
    assert target, "the Makefile's install target"
    assert "constraints.txt" in target.group(1).split(), "a change of the lock must rerun scripts/setup.sh"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install .*-c constraints\.txt \.", dockerfile, re.M), "the image installs with the lock"


@pytest.mark.parametrize("tool", JUDGES)
def test_the_installed_judging_tools_are_the_pinned_ones(tool: str) -> None:
    assert f"=={version(tool)}" == LOCK[tool], f"{tool} {version(tool)} installed, {LOCK[tool]} pinned: make setup"
