// A device metric's history: metric, period and real/drill chosen by the officer; the device's threshold
// overrides for that metric drawn in their level colours.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { errorText } from '../api';
import { LEVEL_COLOURS } from '../colours';
import { levelShort, t, useLang } from '../i18n';
import { formatNumber, unitOf } from '../format';
import { loadHistory } from '../lib/readings';
import type { Device, Level } from '../types';
import { Chart, type Line, type Series } from './Chart';

const RANGES_H = [1, 6, 24, 168];

export function DeviceHistory({ device, metrics }: { device: Device; metrics: string[] }) {
  useLang();
  const [metric, setMetric] = useState(metrics[0] ?? '');
  const [hours, setHours] = useState(1);
  const [drill, setDrill] = useState(false);
  const [series, setSeries] = useState<Series[] | null>(null);
  const [info, setInfo] = useState<{ from: number; to: number; every: number | null; n: number } | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!metrics.includes(metric) && metrics.length) setMetric(metrics[0]);
  }, [metrics.join(',')]);

  useEffect(() => {
    if (!metric) return;
    const abort = new AbortController();
    const to = Date.now();
    const from = to - hours * 3600_000;
    setError(null);
    loadHistory(device.id, metric, from, to, drill, abort.signal).then(
      (h) => {
        setSeries([{ label: metric, color: drill ? '#c39bd3' : '#4fc3f7', points: h.points }]);
        setInfo({ from, to, every: h.readings.every_s, n: h.points.length });
      },
      (err) => {
        if (!abort.signal.aborted) setError(errorText(err));
      },
    );
    return () => abort.abort();
  }, [device.id, metric, hours, drill]);

  const thresholds = useMemo<Line[]>(() => {
    const levels = device.thresholds[metric] ?? {};
    return (Object.entries(levels) as [Level, number][]).map(([level, value]) => ({
      value,
      label: `${levelShort(level)} ${formatNumber(value)} ${unitOf(metric)}`,
      color: LEVEL_COLOURS[level],
    }));
  }, [device, metric]);

  return (
    <div class="device-history">
      <div class="filters">
        <label class="filter">
          <span>{t('metric')}</span>
          <select data-testid="device-metric" value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value)}>
            {metrics.map((m) => (
              <option key={m} value={m}>
                {m} {unitOf(m) && `(${unitOf(m)})`}
              </option>
            ))}
          </select>
        </label>
        <label class="filter">
          <span>{t('range')}</span>
          <select data-testid="device-range" value={hours} onChange={(e) => setHours(Number((e.target as HTMLSelectElement).value))}>
            {RANGES_H.map((h) => (
              <option key={h} value={h}>
                {h} {t('hours')}
              </option>
            ))}
          </select>
        </label>
        <div class="toggle" role="group">
          <button type="button" class={drill ? 'btn' : 'btn btn-on'} aria-pressed={!drill} onClick={() => setDrill(false)}>
            {t('dataReal')}
          </button>
          <button type="button" class={drill ? 'btn btn-drill btn-on' : 'btn'} data-testid="device-drill-toggle" aria-pressed={drill} onClick={() => setDrill(true)}>
            {t('dataDrill')}
          </button>
        </div>
        {info && (
          <span class="muted small">
            {info.n} {t('points')}
            {info.every ? ` · ${t('aggregated')} ${info.every} s` : ''}
          </span>
        )}
      </div>
      {error && <p class="error">{t('error') + error}</p>}
      {!metric && <p class="empty">{t('trendNone')}</p>}
      {series && info && !error && (
        <div data-testid="device-chart">
          {info.n === 0 && <p class="empty">{t('trendEmpty')}</p>}
          <Chart series={series} thresholds={thresholds} unit={unitOf(metric)} from={info.from} to={info.to} />
        </div>
      )}
    </div>
  );
}
