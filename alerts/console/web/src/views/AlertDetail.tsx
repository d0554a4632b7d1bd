import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api';
import { departmentList, hazardName, t, useLang } from '../i18n';
import { alertUnit, formatCoords, formatTime, withUnit } from '../format';
import { useStore } from '../lib/store';
import { alerts } from '../alerts/live';
import { deviceHref } from '../router';
import type { AlertDetail } from '../types';
import { AlertActions } from '../components/AlertActions';
import { AlertState } from '../components/AlertState';
import { AlertTrend } from '../components/AlertTrend';
import { LevelBadge } from '../components/LevelBadge';
import { Timeline } from '../components/Timeline';

function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

/** One alert: its facts, trend, timeline and the officer's actions; refreshed whenever the stream pushes a change. */
export function AlertDetailView({ id }: { id: string }) {
  const lang = useLang();
  const [detail, setDetail] = useState<AlertDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const live = useStore(alerts).get(id);

  const load = useCallback(() => {
    api.alert(id).then(
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

  // A pushed version newer than the one shown: fetch the detail again (for the history).
  useEffect(() => {
    if (live && detail && live.seq > detail.alert.seq) load();
  }, [live?.seq]);

  if (error && !detail) return <p class="error">{t('error') + error}</p>;
  if (!detail) return <p class="empty">{t('loading')}</p>;
  const a = live && live.seq > detail.alert.seq ? live : detail.alert;
  const ack = a.acknowledgement;

  return (
    <div class={`detail ${a.exercise ? 'is-drill' : ''}`} data-testid="alert-detail" data-alert-id={a.id} data-level={a.level} data-acknowledged={String(a.acknowledged)}>
      <div class="detail-head">
        <a href="#/" class="btn">← {t('back')}</a>
        <LevelBadge level={a.level} />
        <h1 class={`detail-title lv-text-${a.level}`}>
          {lang === 'zh' ? a.title.zh : a.title.en}
          <span class="title-sub"> {lang === 'zh' ? a.title.en : a.title.zh}</span>
        </h1>
        <AlertState alert={a} />
      </div>
      {a.exercise && <div class="drill-banner">{t('drillTag')}</div>}
      <div class="detail-grid">
        <section class="card">
          <h2>{t('detailTitle')}</h2>
          <dl class="facts">
            <Field label={t('fieldId')}><span class="mono">{a.id}</span></Field>
            <Field label={t('fieldRule')}><span class="mono">{a.rule}</span></Field>
            <Field label={t('fieldHazard')}>{hazardName(a.hazard)}</Field>
            <Field label={t('fieldDevice')}>
              {a.device_id ? <a href={deviceHref(a.device_id)} class="mono">{a.device_id}</a> : '—'}
            </Field>
            <Field label={t('fieldSite')}>
              {a.site_name ?? '—'} {a.site_id && <span class="muted mono">({a.site_id})</span>}
            </Field>
            <Field label={t('fieldCoords')}><span class="mono">{formatCoords(a.lat, a.lon)}</span></Field>
            <Field label={t('fieldMetric')}><span class="mono">{a.metric ?? '—'}</span></Field>
            <Field label={t('fieldValue')}><strong class="mono">{withUnit(a.value, a.metric, alertUnit(a))}</strong></Field>
            <Field label={t('fieldThreshold')}><span class="mono">{withUnit(a.threshold, a.metric, alertUnit(a))}</span></Field>
            {a.peak != null && (
              <Field label={t('fieldPeak')}>
                <strong class="mono" data-testid="alert-peak">
                  {withUnit(a.peak, a.metric, alertUnit(a))} / {withUnit(a.peak_threshold ?? null, a.metric, alertUnit(a))}
                </strong>
              </Field>
            )}
            <Field label={t('fieldDepartments')}>{departmentList(a.departments)}</Field>
            <Field label={t('fieldOpened')}><span class="mono">{formatTime(a.opened_at)}</span></Field>
            <Field label={t('fieldUpdated')}><span class="mono">{formatTime(a.updated_at)}</span></Field>
            {a.confirms.length > 0 && (
              <Field label={t('fieldConfirms')}><span class="mono small">{a.confirms.join(', ')}</span></Field>
            )}
            {ack && (
              <>
                <Field label={t('ackBy')}><strong data-testid="ack-by">{ack.by}</strong></Field>
                <Field label={t('ackAt')}><span class="mono">{formatTime(ack.at)}</span></Field>
                <Field label={t('ackNote')}><span data-testid="ack-note-shown">{ack.note || '—'}</span></Field>
              </>
            )}
          </dl>
        </section>
        <div class="detail-side">
          <AlertActions alert={a} onDone={load} />
          <section class="card">
            <h2>{t('timeline')}</h2>
            <Timeline history={detail.history} />
          </section>
        </div>
      </div>
      <section class="card">
        <h2>{t('trend')}</h2>
        <AlertTrend alert={a} />
      </section>
    </div>
  );
}
