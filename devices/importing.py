"""Reading and writing device records as CSV and YAML, for ``smartcity devices import`` and ``export``.

A bad row never stops an import: every bad row is reported with its line number and field, and the good rows are
returned for the registry to take. Duplicate ids within one file are errors on the later line. Threshold overrides
out of order (``smartcity.contracts.device.override_problems``) are bad rows too.

CSV columns: ``id, kind, site_id, site_name, lat, lon, interval_s, departments`` (several separated by ``;``),
then any number of ``thresholds.<metric>.<level>`` and ``meta.<key>`` columns; an empty cell means "not set".
YAML: a list of device records (or ``{devices: [...]}``), fields as in the device record contract.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from smartcity.contracts.device import Device, override_problems

BASE_COLUMNS = ("id", "kind", "site_id", "site_name", "lat", "lon", "interval_s", "departments")


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(slots=True)
class ImportResult:
    devices: list[Device] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _validate(raw: dict[str, Any], line: int, result: ImportResult, seen: dict[str, int]) -> None:
    try:
        device = Device.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = ".".join(str(part) for part in err["loc"] if part != "[key]") or "(row)"
            result.errors.append(RowError(line, where, err["msg"]))
        return
    problems = override_problems(device.thresholds)
    for metric, message in problems.items():
        result.errors.append(RowError(line, f"thresholds.{metric}", message))
    if problems:
        return
    if device.id in seen:
        result.errors.append(RowError(line, "id", f"duplicate of line {seen[device.id]}"))
        return
    seen[device.id] = line
    result.devices.append(device)


def read_csv(text: str) -> ImportResult:
    result = ImportResult()
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in BASE_COLUMNS if c not in header]
    unknown = [c for c in header if c not in BASE_COLUMNS and not c.startswith(("thresholds.", "meta."))]
    bad_thresholds = [c for c in header if c.startswith("thresholds.") and c.count(".") != 2]
    for name in missing:
        result.errors.append(RowError(1, name, "required column is missing"))
    for name in unknown + bad_thresholds:
        result.errors.append(RowError(1, name, "unknown column (expected thresholds.<metric>.<level> or meta.<key>)"))
    if result.errors:
        return result
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            result.errors.append(RowError(line, "(row)", f"{len(row[None])} more cells than the header has columns"))
            continue
        raw: dict[str, Any] = {c: row[c] for c in BASE_COLUMNS}
        raw["departments"] = [d.strip() for d in (row["departments"] or "").split(";") if d.strip()]
        thresholds: dict[str, dict[str, str]] = {}
        meta: dict[str, str] = {}
        for column, cell in row.items():
            if not cell or column is None:
                continue
            if column.startswith("thresholds."):
                _, metric, level = column.split(".")
                thresholds.setdefault(metric, {})[level] = cell
            elif column.startswith("meta."):
                meta[column.removeprefix("meta.")] = cell
        raw["thresholds"], raw["meta"] = thresholds, meta
        _validate(raw, line, result, seen)
    return result


def read_yaml(text: str) -> ImportResult:
    result = ImportResult()
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if isinstance(root, yaml.MappingNode):
            root = next((v for k, v in root.value if k.value == "devices"), None)
        if not isinstance(root, yaml.SequenceNode):
            result.errors.append(RowError(1, "(file)", "expected a list of devices, or devices: [...]"))
            return result
        seen: dict[str, int] = {}
        for node in root.value:
            line = node.start_mark.line + 1
            raw = loader.construct_object(node, deep=True)
            if not isinstance(raw, dict):
                result.errors.append(RowError(line, "(row)", "a device must be a mapping"))
                continue
            _validate(raw, line, result, seen)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        result.errors.append(RowError(mark.line + 1 if mark else 1, "(file)", f"not valid YAML: {exc}"))
    finally:
        loader.dispose()
    return result


def write_csv(devices: Iterable[Device]) -> str:
    devices = list(devices)
    thresholds = sorted(
        {f"thresholds.{m}.{lv.value}" for d in devices for m, lvs in d.thresholds.items() for lv in lvs}
    )
    meta = sorted({f"meta.{k}" for d in devices for k in d.meta})
    out = io.StringIO()
    writer = csv.DictWriter(out, [*BASE_COLUMNS, *thresholds, *meta], lineterminator="\n")
    writer.writeheader()
    for d in devices:
        row: dict[str, Any] = d.model_dump(mode="json", include=set(BASE_COLUMNS))
        row["departments"] = ";".join(row["departments"])
        for metric, levels in d.thresholds.items():
            for level, value in levels.items():
                row[f"thresholds.{metric}.{level.value}"] = repr(value)
        for key, text in d.meta.items():
            row[f"meta.{key}"] = text
        writer.writerow(row)
    return out.getvalue()


def write_yaml(devices: Iterable[Device]) -> str:
    records = [d.model_dump(mode="json", exclude={"v"}) for d in devices]
    return yaml.safe_dump({"devices": records}, allow_unicode=True, sort_keys=False)
