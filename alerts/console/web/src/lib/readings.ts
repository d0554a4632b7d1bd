// One device metric's history for a chart, from GET /api/devices/{id}/readings. Short spans come as raw points;
// longer ones as per-interval means (at most ~1,500 points), and if the server still finds too many points (400)
// it is asked again with coarser intervals.
import { ApiError, api } from '../api';
import type { Readings, ReadingPoint } from '../types';

const RAW_SPAN_MS = 3 * 3600_000;
const TARGET_POINTS = 1500;

function pointValue(p: ReadingPoint): number | null {
  const v = p.value !== undefined ? p.value : p.mean ?? p.max ?? null; // booleans have no mean: their max
  if (typeof v === 'boolean') return v ? 1 : 0;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export interface History {
  readings: Readings;
  points: [number, number | null][];
}

export async function loadHistory(
  deviceId: string,
  metric: string,
  from: number,
  to: number,
  drill: boolean,
  signal?: AbortSignal,
): Promise<History> {
  const span = Math.max(1000, to - from);
  let every: number | null = span <= RAW_SPAN_MS ? null : Math.ceil(span / 1000 / TARGET_POINTS);
  for (let attempt = 0; ; attempt++) {
    try {
      const readings = await api.readings(
        deviceId,
        { metric, from: Math.floor(from), to: Math.ceil(to), every: every ?? undefined, drill },
        signal,
      );
      const points = readings.points.map((p) => [p.ts, pointValue(p)] as [number, number | null]);
      points.sort((a, b) => a[0] - b[0]);
      return { readings, points };
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 400 || attempt >= 3) throw err;
      every = Math.max(1, Math.ceil(span / 1000 / (TARGET_POINTS / (attempt + 1) / 2)));
    }
  }
}
