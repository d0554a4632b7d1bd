import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api';
import { departmentList, hazardName, levelShort, t, useLang } from '../i18n';
import { formatCoords, formatTime } from '../format';
import { useStore } from '../lib/store';
import { applyIncident, incidents } from '../alerts/incidents';
import { byLevelThenNewest } from '../alerts/select';
import { incidentHref, reportHref } from '../router';
import type { Incident, IncidentDetail, Level } from '../types';
import { LEVELS } from '../types';
import { IncidentState, incidentSummary } from '../components/IncidentTable';
import { ActionsTable, DeliveriesTable, MembersTable, MessagesTable } from '../components/IncidentTables';
import { LevelBadge } from '../components/LevelBadge';

function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

/** What tells a new version of an incident apart (its seq stays while members join before its first message). */
const version = (i: Incident | undefined): string =>
  i ? `${i.seq}.${i.updated_at}.${i.summary.alerts}.${i.summary.active}.${i.level}.${i.acknowledged}.${i.closed}` : '';

/** Acknowledge or close every member at once, with one note; the report link. */
function IncidentActions({ incident: i, onDone }: { incident: Incident; onDone: () => void }) {
  useLang();
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function run(action: 'ack' | 'close') {
    setBusy(true);
    setError(null);
    try {
      const updated = await (action === 'ack' ? api.incidentAck(i.id, note.trim()) : api.incidentClose(i.id, note.trim()));
      applyIncident(updated);
      setNote('');
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="actions card">
      {!i.closed && (
        <textarea
          data-testid="incident-note"
          rows={2}
          maxLength={2000}
          placeholder={t('incidentNote')}
          value={note}
          onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)}
        />
      )}
      <div class="action-row">
        {!i.acknowledged && !i.closed && (
          <button type="button" class="btn btn-primary" data-testid="incident-ack" disabled={busy} onClick={() => void run('ack')}>
            {t('incidentAckAll')}
          </button>
        )}
        {!i.closed && (
          <button type="button" class="btn btn-danger" data-testid="incident-close" disabled={busy} onClick={() => void run('close')}>
            {t('incidentClose')}
          </button>
        )}
        <a href={reportHref(i.id)} class="btn" data-testid="incident-report-link">
          {t('incidentReport')}
        </a>
      </div>
      {error && (
        <p class="error" role="alert" data-testid="incident-action-error">
          {error}
        </p>
      )}
    </div>
  );
}

/** The incident's facts (shared with the report page). */
export function IncidentFacts({ incident: i }: { incident: Incident }) {
  useLang();
  const levels = LEVELS.filter((l) => (i.summary.levels[l] ?? 0) > 0)
    .map((l: Level) => `${levelShort(l)} ${i.summary.levels[l]}`)
    .join(' · ');
  return (
    <dl class="facts">
      <Field label={t('incidentId')}><span class="mono">{i.id}</span></Field>
      <Field label={t('incidentFamily')}><span class="mono">{i.family}</span> · {hazardName(i.hazard)}</Field>
      <Field label={t('incidentSummary')}>
        <strong data-testid="incident-summary-text">{incidentSummary(i)}</strong>
        <span class="muted"> · {i.summary.active} {t('active')}{levels && ` · ${levels}`}</span>
      </Field>
      <Field label={t('fieldDepartments')}>{departmentList(i.departments)}</Field>
      {i.area && (
        <Field label={t('incidentArea')}>
          <span class="mono">
            {formatCoords(i.area.lat, i.area.lon)} · {t('incidentRadius')} {Math.round(i.area.radius_m)} m
          </span>
        </Field>
      )}
      <Field label={t('fieldOpened')}><span class="mono">{formatTime(i.opened_at)}</span></Field>
      <Field label={t('fieldUpdated')}><span class="mono">{formatTime(i.updated_at)}</span></Field>
      {i.merged_into && (
        <Field label={t('incidentMerged')}>
          <a href={incidentHref(i.merged_into)} class="mono">{i.merged_into}</a>
        </Field>
      )}
    </dl>
  );
}

/** One incident: facts, actions on every member, the members, messages, actions and deliveries; fetched again
 * whenever the stream pushes a change of it. */
export function IncidentDetailView({ id }: { id: string }) {
  const lang = useLang();
  const [detail, setDetail] = useState<IncidentDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const live = useStore(incidents).get(id);

  const load = useCallback(() => {
    api.incident(id).then(
      (d) => {
        setDetail(d);
        setError(null);
      },
      (err) => setError(errorText(err)),
    );
  }, [id]);

  useEffect(() => {
    setDetail(null);
    load();
  }, [id]);

  useEffect(() => {
    if (live && detail && version(live) !== version(detail.incident)) load();
  }, [version(live)]);

  if (error && !detail) return <p class="error">{t('error') + error}</p>;
  if (!detail) return <p class="empty">{t('loading')}</p>;
  const i = detail.incident;
  const members = detail.alerts.map((m) => m.alert).sort(byLevelThenNewest);

  return (
    <div
      class={`detail incident-detail ${i.exercise ? 'is-drill' : ''}`}
      data-testid="incident-detail"
      data-incident-id={i.id}
      data-level={i.level}
      data-acknowledged={String(i.acknowledged)}
      data-closed={String(i.closed)}
    >
      <div class="detail-head">
        <a href="#/" class="btn">← {t('back')}</a>
        <LevelBadge level={i.level} />
        <h1 class={`detail-title lv-text-${i.level}`}>
          {lang === 'zh' ? i.title.zh : i.title.en}
          <span class="title-sub"> {lang === 'zh' ? i.title.en : i.title.zh}</span>
        </h1>
        <IncidentState incident={i} />
      </div>
      {i.exercise && <div class="drill-banner">{t('drillTag')}</div>}
      <div class="detail-grid">
        <section class="card">
          <h2>{t('incidentDetail')}</h2>
          <IncidentFacts incident={i} />
        </section>
        <div class="detail-side">
          <IncidentActions incident={i} onDone={load} />
        </div>
      </div>
      <section class="card">
        <h2>
          {t('incidentMembers')} <span class="count">{members.length}</span>
        </h2>
        <MembersTable alerts={members} />
      </section>
      <section class="card">
        <h2>{t('incidentMessages')}</h2>
        <MessagesTable history={detail.history} />
      </section>
      <section class="card">
        <h2>{t('incidentActions')}</h2>
        <ActionsTable actions={detail.actions} />
      </section>
      <section class="card">
        <h2>{t('incidentDeliveries')}</h2>
        <DeliveriesTable deliveries={detail.deliveries} />
      </section>
    </div>
  );
}
