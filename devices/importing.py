"""Reading and writing device records as CSV and YAML, for ``smartcity devices import`` and ``export``.

A bad row never stops an import: every bad row is reported with its line number and field, and the good rows are
returned for the registry to take. Duplicate ids within one file are errors on the later line. Threshold overrides
out of order (``core.contracts.device.override_problems``) are bad rows too.

CSV columns: ``id, kind, site_id, site_name, lat, lon, interval_s, departments`` (several separated by ``;``),
then any number of ``thresholds.<metric>.<level>`` and ``meta.<key>`` columns, each once; an empty cell means
"not set". YAML: a list of device records (or ``{devices: [...]}``), fields as in the device record contract.

Files are what spreadsheets write and read (``read_file``): UTF-8 with or without a byte-order mark, else GB18030
(GBK's superset, what Excel saves as "CSV" on a zh-CN desktop). An exported text cell a spreadsheet would take for
a formula (starting ``= + - @``, tab or CR) is written with a ``'`` before it, as OWASP advises against CSV
injection, and so is one starting with ``'``; reading takes one such ``'`` off again, so an export imports as it was.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from core.contracts.device import Device, override_problems

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
    encoding: str = "utf-8"  # what the file was read as (``read_file``): "utf-8" or "gb18030"


# A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTED = (*FORMULA_STARTS, "'")


def _neutralised(text: str) -> str:
    """A text cell as exported: ``'`` before one a spreadsheet would run, or that starts with ``'`` itself (so that
    ``_restored`` knows every such quote is ours)."""
    return "'" + text if text.startswith(_QUOTED) else text


def _restored(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_QUOTED) else cell


def read_file(data: bytes, *, yaml: bool) -> ImportResult:
    """A CSV or YAML file's bytes: UTF-8 (a byte-order mark is dropped), else GB18030, else one error naming the line
    and byte where UTF-8 failed. ``encoding`` says which was used, so that a caller can say so."""
    try:
        text, encoding = data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as utf8:
        try:
            text, encoding = data.decode("gb18030").removeprefix("\ufeff"), "gb18030"
        except UnicodeDecodeError as gb:
            line = data[: utf8.start].count(b"\n") + 1
            message = (
                f"neither UTF-8 ({utf8.reason} at byte {utf8.start}) nor GB18030 ({gb.reason} at byte {gb.start}): "
                'save it as UTF-8 (Excel: "CSV UTF-8")'
            )
            return ImportResult(errors=[RowError(line, "(file)", message)])
    result = read_yaml(text) if yaml else read_csv(text)
    result.encoding = encoding
    return result


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
    for name, count in Counter(header).items():
        if count > 1:  # csv.DictReader would keep the last one's cell and drop the others without a word
            places = [str(i + 1) for i, c in enumerate(header) if c == name]
            where = f"{', '.join(places[:-1])} and {places[-1]}"
            result.errors.append(RowError(1, name, f"column appears more than once (columns {where}): keep one"))
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
        if row["site_name"]:
            raw["site_name"] = _restored(row["site_name"])
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
                meta[column.removeprefix("meta.")] = _restored(cell)
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
        row["site_name"] = _neutralised(row["site_name"])
        for metric, levels in d.thresholds.items():
            for level, value in levels.items():
                row[f"thresholds.{metric}.{level.value}"] = repr(value)
        for key, text in d.meta.items():
            row[f"meta.{key}"] = _neutralised(text)
        writer.writerow(row)
    return out.getvalue()


def write_yaml(devices: Iterable[Device]) -> str:
    records = [d.model_dump(mode="json", exclude={"v"}) for d in devices]
    return yaml.safe_dump({"devices": records}, allow_unicode=True, sort_keys=False)
