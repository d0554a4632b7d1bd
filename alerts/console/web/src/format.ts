// Times, units and values as officers read them. Times are Shenzhen local time (Asia/Shanghai, UTC+8) whatever
// the browser's own zone, so every screen in the operations room shows the same clock.
import { t, tn } from './i18n';
import type { Alert } from './types';

export const TIME_ZONE = 'Asia/Shanghai';

const fmt = (options: Intl.DateTimeFormatOptions) =>
  new Intl.DateTimeFormat('zh-CN', { timeZone: TIME_ZONE, hour12: false, ...options });

const dateTime = fmt({
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});
const timeOnly = fmt({ hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayKey = fmt({ year: 'numeric', month: '2-digit', day: '2-digit' });

/** "2026-11-25 08:00:00" in Shenzhen time. */
export function formatTime(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms)) return '—';
  const parts = Object.fromEntries(dateTime.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  const hour = parts.hour === '24' ? '00' : parts.hour;
  return `${parts.year}-${parts.month}-${parts.day} ${hour}:${parts.minute}:${parts.second}`;
}

/** Only the time of day when it is today (Shenzhen), else the full date and time. */
export function formatShort(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  if (dayKey.format(d) === dayKey.format(new Date())) return timeOnly.format(d);
  return formatTime(ms);
}

const hourMinute = fmt({ hour: '2-digit', minute: '2-digit' });
const monthDay = fmt({ month: '2-digit', day: '2-digit' });

/** The Shenzhen calendar day of an instant. */
export const dayOf = (ms: number): string => dayKey.format(new Date(ms));

/** A chart's time tick: "08:30", with the date under it where the day changes (or on the first tick). */
export function formatTick(ms: number, withDate: boolean): string {
  const d = new Date(ms);
  const hm = hourMinute.format(d).replace(/^24/, '00');
  return withDate ? `${hm}\n${monthDay.format(d)}` : hm;
}

/** "3 min ago" / "3 分钟前". */
export function formatAgo(ms: number | null | undefined, now = Date.now()): string {
  if (ms == null) return '—';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return tn('agoS', s);
  if (s < 3600) return tn('agoM', Math.floor(s / 60));
  if (s < 86400) return tn('agoH', Math.floor(s / 3600));
  return tn('agoD', Math.floor(s / 86400));
}

/** Units of the catalogued metrics (copied from core/contracts/catalogue.py METRICS). */
export const UNITS: Record<string, string> = {
  ch4_lel: '%LEL',
  co_ppm: 'ppm',
  h2s_ppm: 'ppm',
  o2_pct: '%VOL',
  level_m: 'm',
  rain_mm_h: 'mm/h',
  temp_c: '°C',
  smoke: '',
  flame: '',
  tilt_deg: '°',
  crack_mm: 'mm',
  displacement_mm: 'mm',
  strain_ue: 'µε',
  vibration_mm_s: 'mm/s',
  battery_pct: '%',
  rssi_dbm: 'dBm',
};

export const unitOf = (metric: string | null | undefined): string => (metric ? UNITS[metric] ?? '' : '');

export function formatNumber(v: number | boolean | null | undefined, digits = 2): string {
  if (v == null) return '—';
  if (typeof v === 'boolean') return v ? t('yes') : t('no');
  if (!Number.isFinite(v)) return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(digits).replace(/\.?0+$/, '');
}

export function withUnit(v: number | boolean | null | undefined, metric: string | null | undefined, unitOverride?: string): string {
  const unit = typeof v === 'number' ? unitOverride ?? unitOf(metric) : '';
  return unit ? `${formatNumber(v)} ${unit}` : formatNumber(v);
}

/** What an alert's row shows: while active, the latest value; once cleared, the peak that raised it to its level
 * (the value that cleared it is under the threshold, beside a red badge it would contradict). */
export function shownValue(a: Alert): { value: number | boolean | null; threshold: number | boolean | null; peak: boolean } {
  if (!a.active && a.peak != null) return { value: a.peak, threshold: a.peak_threshold ?? a.threshold, peak: true };
  return { value: a.value, threshold: a.threshold, peak: false };
}

/** "62.5 / 50 %LEL" (a site alert's value and threshold are counts of detectors, without a unit). */
export function valueThreshold(a: Alert): string {
  const { value, threshold } = shownValue(a);
  if (value == null && threshold == null) return '—';
  const unit = typeof value === 'number' ? alertUnit(a) : '';
  return `${formatNumber(value)} / ${formatNumber(threshold)}${unit ? ' ' + unit : ''}`;
}

/** The unit of an alert's value: its metric's, or seconds of silence for an offline device. */
export function alertUnit(a: Alert): string {
  if (a.metric) return unitOf(a.metric);
  return a.rule.endsWith('.offline') ? 's' : '';
}

export function formatCoords(lat: number | null, lon: number | null): string {
  if (lat == null || lon == null) return '—';
  return `${lat.toFixed(5)}° N, ${lon.toFixed(5)}° E`;
}
