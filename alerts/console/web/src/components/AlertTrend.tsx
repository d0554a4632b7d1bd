// The alert's trend: its metric from 30 min before it opened to now, the threshold drawn, the opening marked.
// Drill alerts read drill readings (drill=true). A site alert (no device of its own) charts the device alerts it
// confirms, as far as the live store knows them. A device removed from the registry since (a drill removes its
// fleet when it ends) has no readings to ask for: it is named as removed, and the alert's own recorded values are
// shown instead of an error.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, errorText } from '../api';
import { LEVEL_COLOURS } from '../colours';
import { t, useLang } from '../i18n';
import { unitOf, valueThreshold } from '../format';
import { useStore } from '../lib/store';
import { loadHistory } from '../lib/readings';
import { alerts } from '../alerts/live';
import type { Alert } from '../types';
import { Chart, type Line, type Marker, type Series } from './Chart';

const BEFORE_MS = 30 * 60_000;
const REFRESH_MS = 30_000;
const PALETTE = ['#4fc3f7', '#ffb74d', '#81c784', '#ba68c8', '#f06292', '#fff176'];

interface Source {
  device: string;
  metric: string;
}

function sourcesOf(a: Alert, all: ReadonlyMap<string, Alert>): Source[] {
  if (a.device_id && a.metric) return [{ device: a.device_id, metric: a.metric }];
  if (!a.confirms.length) return [];
  const found = new Map<string, Source>();
  for (const other of all.values()) {
    if (other.device_id && other.metric && a.confirms.includes(other.key)) {
      found.set(`${other.device_id}/${other.metric}`, { device: other.device_id, metric: other.metric });
    }
  }
  return [...found.values()].slice(0, PALETTE.length);
}

export function AlertTrend({ alert: a }: { alert: Alert }) {
  useLang();
  const all = useStore(alerts);
  const sources = sourcesOf(a, all);
  const sourceKey = sources.map((s) => `${s.device}/${s.metric}`).join(',');
  const [series, setSeries] = useState<Series[] | null>(null);
  const [removed, setRemoved] = useState<string[]>([]);
  const [range, setRange] = useState<[number, number]>([a.opened_at - BEFORE_MS, Date.now()]);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const id = window.setInterval(() => setTick((n) => n + 1), REFRESH_MS);
    return () => window.clearInterval(id);
  }, []);

  useEffect(() => {
    if (!sources.length) return;
    const abort = new AbortController();
    const from = a.opened_at - BEFORE_MS;
    const to = Math.max(Date.now(), from + 60_000);
    const gone = (err: unknown) => err instanceof ApiError && err.status === 404;
    Promise.all(
      sources.map((s) =>
        loadHistory(s.device, s.metric, from, to, a.exercise, abort.signal).catch((err) => {
          if (gone(err)) return null; // not in the registry any more
          throw err;
        }),
      ),
    )
      .then((results) => {
        setRange([from, to]);
        setRemoved(sources.filter((_, i) => results[i] === null).map((s) => s.device));
        setSeries(
          results.flatMap((r, i) =>
            r === null
              ? []
              : [{
                  label: sources.length > 1 ? `${sources[i].device} ${sources[i].metric}` : sources[i].metric,
                  color: PALETTE[i],
                  points: r.points,
                }],
          ),
        );
        setError(null);
      })
      .catch((err) => {
        if (!abort.signal.aborted) setError(errorText(err));
      });
    return () => abort.abort();
  }, [a.id, a.seq, a.opened_at, a.exercise, sourceKey, tick]);

  const thresholds = useMemo<Line[]>(
    () =>
      typeof a.threshold === 'number' && a.metric
        ? [{ value: a.threshold, label: `${t('threshold')} ${a.threshold} ${unitOf(a.metric)}`, color: LEVEL_COLOURS[a.level] }]
        : [],
    [a.threshold, a.metric, a.level],
  );
  const markers = useMemo<Marker[]>(() => [{ at: a.opened_at, label: t('opened'), color: '#e0e6ee' }], [a.opened_at]);

  if (!sources.length) return <p class="empty">{t('trendNone')}</p>;
  if (error) return <p class="error">{t('error') + error}</p>;
  if (!series) return <p class="empty">{t('loading')}</p>;
  const note = removed.length > 0 && (
    <p class="empty" data-testid="trend-removed">
      {t('trendRemoved')}
      <span class="mono">{removed.join(', ')}</span>
      {series.length === 0 && (
        <>
          <br />
          {t('trendRecorded')}
          <span class="mono">{valueThreshold(a)}</span>
        </>
      )}
    </p>
  );
  if (series.length === 0) return <div data-testid="trend-chart">{note}</div>;
  const empty = series.every((s) => s.points.length === 0);
  return (
    <div data-testid="trend-chart">
      {note}
      {empty && <p class="empty">{t('trendEmpty')}</p>}
      <Chart series={series} thresholds={thresholds} markers={markers} unit={unitOf(sources[0].metric)} from={range[0]} to={range[1]} />
    </div>
  );
}
