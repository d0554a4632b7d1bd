"""A drill report as text (the terminal), JSON (machines) and an HTML page with a timeline plot (people).

The HTML page is one self-contained file: the plot is an inline SVG drawn by matplotlib (text kept as text, so the
browser draws the Chinese labels with its own fonts), the page a Jinja2 template with autoescaping on, since
device and site names come from the registry and must never become markup.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import jinja2
import matplotlib
from markupsafe import Markup

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen before pyplot is imported

from simulators.report import DrillReport

LEVEL_COLOURS = {"blue": "#1f6fd1", "yellow": "#e6b800", "orange": "#f07c00", "red": "#d40000"}
_TEMPLATE = Path(__file__).with_name("templates") / "drill.html.j2"


def text(report: DrillReport) -> str:
    verdict = "通过 PASS" if report.passed else "未通过 FAIL"
    lines = [
        f"演练 drill: {report.scenario} - {report.title.zh} / {report.title.en}",
        f"  {report.mode}, seed {report.seed}, speed x{report.speed:g}, {report.devices} devices, "
        f"{report.messages_sent} messages, {report.run_s:.1f} s, started {report.started_at}",
        "",
        "expected 预期:",
    ]
    for e in report.expectations:
        mark = "ok  " if e.ok else "FAIL"
        got = f"{e.got_level or ''} at {','.join(e.got_departments) or '-'}" if e.rule else ""
        late = f"{e.late_s:6.1f} s" if e.late_s is not None else "     -  "
        lines.append(f"  [{mark}] {e.name:<55} {late}  {got}  (hazard: {e.hazard})")
        if e.problem:
            lines.append(f"         {e.problem}")
    lines.append(f"unexpected alerts 意外告警: {len(report.unexpected)}")
    for a in report.unexpected:
        where = a.device_id or a.site_id
        lines.append(f"  [FAIL] {a.rule} {a.level} @ {where} at {a.first_s:.1f} s {a.problem or ''}".rstrip())
    if report.unexpected_refusals:
        lines.append(f"refusals at devices without a fault 非故障设备的拒收: {len(report.unexpected_refusals)}")
        lines.extend(
            f"  [FAIL] {reason} @ {device} at {at:.1f} s" for at, device, reason in report.unexpected_refusals[:20]
        )
    lines.append(f"related alerts 相关告警: {len(report.related)}")
    if report.incidents or report.hazard_events:
        alerts = sum(i.alerts for i in report.incidents)
        lines.append(
            f"incidents 事件: {len(report.incidents)} for {report.hazard_events} hazard events 隐患事件, "
            f"{alerts} alerts 告警"
        )
        for i in report.incidents:
            told = ", ".join(f"{d} {n}" for d, n in sorted(i.messages.items())) or "-"
            lines.append(
                f"  {i.level.value:<6} {i.alerts:>3} alerts @ {i.sites} places: {i.title.zh}  (messages 通知: {told})"
            )
    if report.refusals:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.refusals.items()))
        lines.append(f"refusals 拒收: {counts}")
    lines += ["", f"result 结果: {verdict}"]
    return "\n".join(lines)


def timeline_svg(report: DrillReport) -> str:
    """One row per expectation (its window, where it arrived) and per unexpected alert; hazard starts as lines."""
    rows: list[tuple[str, float | None, float | None, str, bool]] = []  # label, window start, deadline, colour, ok
    starts = {h.label: h.starts_after_s for h in report.hazards}
    arrivals: list[tuple[int, float, str]] = []
    for e in report.expectations:
        start = starts.get(e.hazard, 0.0)
        colour = LEVEL_COLOURS.get(e.got_level or e.level or "", "#555555")
        rows.append((e.name, start, start + e.within_s, colour, e.ok))
        if e.at_s is not None:
            arrivals.append((len(rows) - 1, e.at_s, colour))
    for a in report.unexpected:
        rows.append((f"unexpected: {a.rule} @ {a.device_id or a.site_id}", None, None, "#000000", False))
        arrivals.append((len(rows) - 1, a.first_s, LEVEL_COLOURS.get(a.level, "#000000")))
    height = 1.2 + 0.35 * max(1, len(rows))
    with plt.rc_context({"svg.fonttype": "none", "font.size": 9}), warnings.catch_warnings():
        # Text stays text in the SVG and the browser draws it; matplotlib's own fonts lack CJK glyphs, which only
        # matters to its size estimates for the layout.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig, ax = plt.subplots(figsize=(10, height))
        for y, (_label, lo, hi, _colour, ok) in enumerate(rows):
            if lo is not None and hi is not None:
                ax.barh(y, hi - lo, left=lo, height=0.5, color="#d8f0d8" if ok else "#f6d5d5", edgecolor="#999999")
        for y, at, colour in arrivals:
            ax.plot([at], [y], marker="o", markersize=8, color=colour, markeredgecolor="#222222")
        for hazard in report.hazards:
            ax.axvline(hazard.starts_after_s, color="#888888", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel("seconds into the run 演练开始后秒数")
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg")
        plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog: the SVG goes inline in the page


def html(report: DrillReport) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATE.parent), autoescape=True, undefined=jinja2.StrictUndefined
    )
    svg = Markup(timeline_svg(report))  # noqa: S704  (matplotlib escapes the text it writes into the SVG)
    return env.get_template(_TEMPLATE.name).render(r=report, svg=svg, colours=LEVEL_COLOURS)


def write(report: DrillReport, base: Path) -> list[Path]:
    """``base``.txt, .json and .html; the paths written."""
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = [base.with_suffix(".txt"), base.with_suffix(".json"), base.with_suffix(".html")]
    paths[0].write_text(text(report) + "\n", encoding="utf-8")
    paths[1].write_text(report.model_dump_json(indent=2), encoding="utf-8")
    paths[2].write_text(html(report), encoding="utf-8")
    return paths
