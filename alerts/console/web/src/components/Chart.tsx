// A uPlot time chart: one or more series, horizontal threshold lines and vertical time markers, in Shenzhen time.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { t, useLang } from '../i18n';
import { TIME_ZONE, dayOf, formatTick, formatTime } from '../format';

export interface Series {
  label: string;
  color: string;
  /** [epoch ms, value] sorted by time; null is a gap */
  points: [number, number | null][];
}

export interface Line {
  value: number;
  label: string;
  color: string;
}

export interface Marker {
  at: number;
  label: string;
  color: string;
}

interface Props {
  series: Series[];
  thresholds?: Line[];
  markers?: Marker[];
  height?: number;
  unit?: string;
  /** x range in epoch ms */
  from?: number;
  to?: number;
}

const AXIS = { stroke: '#a7b0be', grid: { stroke: '#2a3342', width: 1 }, ticks: { stroke: '#2a3342' } };

/** Merge the series on one time axis (uPlot needs one x array), seconds as uPlot wants them. */
function align(series: Series[]): uPlot.AlignedData {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = series.map((s) => {
    const col: (number | null)[] = new Array(times.length).fill(null);
    for (const [t, v] of s.points) col[index.get(t)!] = v;
    return col;
  });
  return [times.map((t) => t / 1000), ...columns] as uPlot.AlignedData;
}

/** A dashed line from (x1, y1) to (x2, y2) in canvas pixels, its label at (tx, ty). */
function dashed(
  ctx: CanvasRenderingContext2D,
  color: string,
  dash: [number, number],
  [x1, y1, x2, y2]: [number, number, number, number],
  label: string,
  [tx, ty]: [number, number],
): void {
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.setLineDash(dash.map((d) => d * devicePixelRatio));
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x2, y2);
  ctx.stroke();
  ctx.fillText(label, tx, ty);
}

function drawLines(u: uPlot, thresholds: Line[], markers: Marker[]): void {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const px = devicePixelRatio;
  ctx.save();
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.lineWidth = 1.5 * px;
  ctx.font = `${11 * px}px system-ui, sans-serif`;
  for (const th of thresholds) {
    const y = Math.round(u.valToPos(th.value, 'y', true));
    if (y >= top && y <= top + height) {
      dashed(ctx, th.color, [6, 4], [left, y, left + width, y], th.label, [left + 4 * px, y - 4 * px]);
    }
  }
  for (const m of markers) {
    const x = Math.round(u.valToPos(m.at / 1000, 'x', true));
    if (x >= left && x <= left + width) {
      dashed(ctx, m.color, [2, 3], [x, top, x, top + height], m.label, [x + 4 * px, top + 12 * px]);
    }
  }
  ctx.restore();
}

const NO_LINES: Line[] = [];
const NO_MARKERS: Marker[] = [];

export function Chart({ series, thresholds = NO_LINES, markers = NO_MARKERS, height = 260, unit = '', from, to }: Props) {
  const lang = useLang();
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const data = align(series);
    const opts: uPlot.Options = {
      width: Math.max(300, el.clientWidth),
      height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TIME_ZONE),
      scales: {
        x: { time: true, range: from != null && to != null ? [from / 1000, to / 1000] : undefined },
        y: {
          range: (_u, min, max) => {
            const values = [min, max, ...thresholds.map((t) => t.value)].filter((v) => v != null && Number.isFinite(v));
            let lo = Math.min(...values);
            let hi = Math.max(...values);
            if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
            const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
            return [lo - pad, hi + pad];
          },
        },
      },
      axes: [
        {
          ...AXIS,
          size: 44,
          // 24-hour Shenzhen time; the date where the day changes
          values: (_u, splits) =>
            splits.map((s, i) => formatTick(s * 1000, i === 0 || dayOf(s * 1000) !== dayOf(splits[i - 1] * 1000))),
        },
        { ...AXIS, size: 60, label: unit || undefined, labelSize: unit ? 18 : 0 }],
      legend: { show: series.length > 1 },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: t('time'), value: (_u, v) => (v == null ? '—' : formatTime(v * 1000)) },
        ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.6, spanGaps: true, points: { show: s.points.length <= 60, size: 5 } })),
      ],
      hooks: { draw: [(u: uPlot) => drawLines(u, thresholds, markers)] },
    };
    const plot = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(300, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [series, thresholds, markers, height, unit, from, to, lang]);
  return <div class="chart" ref={box} />;
}
