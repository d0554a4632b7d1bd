// The after-action report (事故分析) of an incident, from GET /api/incidents/{id}/report: facts, how long each step
// took, each department's response, every member device's readings, every alert event, the incident's messages,
// the officers' actions and the deliveries. Print it (the navigation is hidden in print), or export the server's
// printable page (report.html) as a file.
import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, errorText } from '../api';
import { LEVEL_COLOURS } from '../colours';
import { departmentName, eventName, lang, levelShort, t, tn, useLang } from '../i18n';
import { formatNumber, formatTime } from '../format';
import { incidentHref } from '../router';
import type { Level, Report, ReportSeries } from '../types';
import { LEVELS } from '../types';
import { Chart, type Line, type Marker, type Series } from '../components/Chart';
import { IncidentState } from '../components/IncidentTable';
import { ActionsTable, DeliveriesTable, MembersTable, MessagesTable } from '../components/IncidentTables';
import { LevelBadge } from '../components/LevelBadge';
import { IncidentFacts } from './IncidentDetail';

const COLOURS = ['#4fc3f7', '#81c784', '#ffb74d', '#ba68c8', '#e57373', '#4db6ac', '#f06292', '#aed581'];

function seconds(s: number | null): string {
  if (s == null) return '—';
  if (s < 120) return tn('seconds', Math.round(s));
  const m = Math.floor(s / 60);
  return lang.get() === 'zh' ? `${m} 分 ${Math.round(s % 60)} 秒` : `${m} min ${Math.round(s % 60)} s`;
}

function Fact({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

function points(s: ReportSeries): [number, number | null][] {
  const out: [number, number | null][] = [];
  for (const p of s.points) {
    const at = p.ts ?? p.time;
    if (typeof at !== 'number') continue;
    const v = p.value !== undefined ? p.value : p.mean ?? p.max ?? null;
    out.push([at, typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'number' && Number.isFinite(v) ? v : null]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** One member device metric over the report's period: its alerts' thresholds and events drawn on it. */
function Readings({ report, series, n }: { report: Report; series: ReportSeries; n: number }) {
  useLang();
  const data = useMemo<Series[]>(
    () => [{ label: `${series.device_id} ${series.metric}`, color: COLOURS[n % COLOURS.length], points: points(series) }],
    [series, n],
  );
  const alerts = report.detail.alerts.filter((m) => m.alert.device_id === series.device_id && m.alert.metric === series.metric);
  const lines = useMemo<Line[]>(() => {
    const seen = new Set<number>();
    const out: Line[] = [];
    for (const { alert: a } of alerts) {
      const value = a.peak_threshold ?? a.threshold;
      if (typeof value !== 'number' || seen.has(value)) continue;
      seen.add(value);
      out.push({ value, label: `${levelShort(a.level)} ${formatNumber(value)} ${series.unit}`, color: LEVEL_COLOURS[a.level] });
    }
    return out;
  }, [report, series]);
  const markers = useMemo<Marker[]>(() => {
    const ids = new Set(alerts.map((m) => m.alert.id));
    return report.events
      .filter((e) => ids.has(e.alert_id) && ['raised', 'escalated', 'acknowledged', 'cleared', 'closed'].includes(e.event))
      .map((e) => ({
        at: e.at,
        label: eventName(e.event),
        color: LEVELS.includes(e.level as Level) ? LEVEL_COLOURS[e.level as Level] : '#a7b0be',
      }));
  }, [report, series]);
  return (
    <div class="report-series" data-testid="report-series" data-device-id={series.device_id}>
      <h3>
        <span class="mono">{series.device_id}</span> · <span class="mono">{series.metric}</span>
        {series.unit && <span class="muted"> ({series.unit})</span>}
        {series.every_s ? <span class="muted small"> · {t('aggregated')} {series.every_s} s</span> : null}
      </h3>
      {series.error ? (
        <p class="empty">{series.error}</p>
      ) : data[0].points.length === 0 ? (
        <p class="empty">{t('reportNoReadings')}</p>
      ) : (
        <Chart series={data} thresholds={lines} markers={markers} unit={series.unit} from={report.from_ms} to={report.to_ms} height={200} />
      )}
    </div>
  );
}

async function exportHtml(id: string): Promise<void> {
  const blob = await (await api.incidentReportHtml(id)).blob();
  const url = URL.createObjectURL(new Blob([blob], { type: 'text/html' }));
  // Saved as a file: a Blob page opened here would inherit the console's Content-Security-Policy, which refuses
  // the report's own stylesheet; the saved file opens anywhere, prints, and keeps.
  const link = document.createElement('a');
  link.href = url;
  link.download = `${id}-report.html`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function IncidentReportView({ id }: { id: string }) {
  const lng = useLang();
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [exportError, setExportError] = useState<string | null>(null);

  useEffect(() => {
    setReport(null);
    setError(null);
    api.incidentReport(id).then(setReport, (err) => setError(errorText(err)));
  }, [id]);

  if (error) return <p class="error">{t('error') + error}</p>;
  if (!report) return <p class="empty">{t('loading')}</p>;
  const i = report.detail.incident;
  const members = report.detail.alerts.map((m) => m.alert);

  return (
    <div class={`report ${i.exercise ? 'is-drill' : ''}`} data-testid="incident-report" data-incident-id={i.id}>
      <div class="detail-head no-print">
        <a href={incidentHref(i.id)} class="btn">← {t('back')}</a>
        <div class="spacer" />
        <button type="button" class="btn" data-testid="report-print" onClick={() => window.print()}>
          {t('reportPrint')}
        </button>
        <button
          type="button"
          class="btn"
          data-testid="report-export"
          onClick={() => {
            setExportError(null);
            exportHtml(i.id).catch((err) => setExportError(errorText(err)));
          }}
        >
          {t('reportExport')}
        </button>
      </div>
      {exportError && <p class="error no-print">{t('error') + exportError}</p>}
      <header class="report-head">
        <div class="muted">{t('reportTitle')}</div>
        <h1 class={`detail-title lv-text-${i.level}`}>
          <LevelBadge level={i.level} /> {lng === 'zh' ? i.title.zh : i.title.en}
          <span class="title-sub"> {lng === 'zh' ? i.title.en : i.title.zh}</span>
        </h1>
        <IncidentState incident={i} />
        {i.exercise && <div class="drill-banner">{t('drillTag')}</div>}
      </header>
      <section class="card">
        <div class="report-facts">
          <IncidentFacts incident={i} />
          <dl class="facts">
            <Fact label={t('reportPeriod')}>
              <span class="mono">
                {formatTime(report.from_ms)} — {formatTime(report.to_ms)}
              </span>
            </Fact>
            <Fact label={t('reportToFirstMessage')}><span class="mono">{seconds(report.seconds_to_first_message)}</span></Fact>
            <Fact label={t('reportToClose')}><span class="mono">{seconds(report.seconds_to_close)}</span></Fact>
            <Fact label={t('reportGenerated')}><span class="mono">{formatTime(report.generated_at)}</span></Fact>
          </dl>
        </div>
      </section>
      <section class="card">
        <h2>{t('reportDepartments')}</h2>
        <table class="grid" data-testid="report-departments">
          <thead>
            <tr>
              <th>{t('colDepartments')}</th>
              <th>{t('colFirstTold')}</th>
              <th>{t('colAckAt')}</th>
              <th>{t('ackBy')}</th>
              <th>{t('colAckSeconds')}</th>
            </tr>
          </thead>
          <tbody>
            {report.departments.map((d) => (
              <tr key={d.department} data-department={d.department}>
                <td>{departmentName(d.department)}</td>
                <td class="mono">{d.first_told_at ? formatTime(d.first_told_at) : '—'}</td>
                <td class="mono">{d.acknowledged_at ? formatTime(d.acknowledged_at) : '—'}</td>
                <td>{d.acknowledged_by ?? '—'}</td>
                <td class="mono">{seconds(d.seconds_to_acknowledge)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section class="card">
        <h2>
          {t('incidentMembers')} <span class="count">{members.length}</span>
        </h2>
        <MembersTable alerts={members} />
      </section>
      <section class="card report-readings">
        <h2>{t('reportReadings')}</h2>
        {report.readings.length === 0 && <p class="empty">{t('reportNoReadings')}</p>}
        {report.readings.map((s, n) => (
          <Readings key={`${s.device_id}/${s.metric}`} report={report} series={s} n={n} />
        ))}
      </section>
      <section class="card">
        <h2>{t('reportEvents')}</h2>
        <table class="grid" data-testid="report-events">
          <thead>
            <tr>
              <th>{t('time')}</th>
              <th>{t('colEvent')}</th>
              <th>{t('colLevel')}</th>
              <th>{t('colDevice')}</th>
              <th>{t('colSite')}</th>
              <th>{t('fieldRule')}</th>
              <th>{t('by')}</th>
              <th>{t('ackNote')}</th>
            </tr>
          </thead>
          <tbody>
            {report.events.map((e, n) => (
              <tr key={n} data-event={e.event}>
                <td class="mono">{formatTime(e.at)}</td>
                <td>{eventName(e.event)}</td>
                <td>{LEVELS.includes(e.level as Level) ? <LevelBadge level={e.level as Level} /> : e.level}</td>
                <td class="mono">{e.device_id ?? '—'}</td>
                <td>{e.site_name ?? '—'}</td>
                <td class="mono small">{e.rule}</td>
                <td>{e.by ?? '—'}</td>
                <td>{e.note || '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section class="card">
        <h2>{t('incidentMessages')}</h2>
        <MessagesTable history={report.detail.history} />
      </section>
      <section class="card">
        <h2>{t('incidentActions')}</h2>
        <ActionsTable actions={report.detail.actions} />
      </section>
      <section class="card">
        <h2>{t('incidentDeliveries')}</h2>
        <DeliveriesTable deliveries={report.detail.deliveries} />
      </section>
    </div>
  );
}
