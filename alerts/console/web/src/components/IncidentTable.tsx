// The board's table: a row per incident (its member alerts folded under it, shown on demand) and a row per alert
// that belongs to no incident held here. An incident's row flashes, never its members' (alarm.ts).
import { departmentList, t, tn, useLang } from '../i18n';
import { formatShort, formatTime } from '../format';
import { isAlarming } from '../alerts/alarm';
import type { Entry } from '../alerts/select';
import { createStore, useStore } from '../lib/store';
import { go, incidentHref } from '../router';
import type { Incident } from '../types';
import { AlertHead, AlertRow } from './AlertTable';
import { LevelBadge } from './LevelBadge';

/** The officer's choice per incident (unfolded or not), kept while moving between pages. By default an incident of
 * one alert shows it, a larger one is folded. */
export const unfolded = createStore<ReadonlyMap<string, boolean>>(new Map());

function toggle(id: string, open: boolean): void {
  unfolded.update((prev) => new Map(prev).set(id, open));
}

/** Active or cleared, acknowledged or not, closed; reminders sent. */
export function IncidentState({ incident: i }: { incident: Incident }) {
  return (
    <span class="states">
      {i.closed ? (
        <span class="st st-closed">{t('closed')}</span>
      ) : (
        <span class={i.active ? 'st st-active' : 'st st-cleared'}>{i.active ? t('active') : t('cleared')}</span>
      )}
      <span class={i.acknowledged ? 'st st-ack' : 'st st-unack'}>
        {i.acknowledged ? t('acknowledged') : t('unacknowledged')}
      </span>
      {i.escalations > 0 && <span class="st st-esc">{tn('escalations', i.escalations)}</span>}
    </span>
  );
}

/** "3 条告警 · 2 处" */
export const incidentSummary = (i: Incident): string =>
  `${tn('incidentAlerts', i.summary.alerts)} · ${tn('incidentSites', i.summary.sites)}`;

function IncidentRows({ entry }: { entry: Extract<Entry, { kind: 'incident' }> }) {
  const lang = useLang();
  const choice = useStore(unfolded).get(entry.incident.id);
  const i = entry.incident;
  const open = choice ?? entry.members.length <= 1;
  const cls = ['incident-row', `lv-${i.level}`, isAlarming(i) ? 'flash' : '', i.closed ? 'is-closed' : '', i.active ? '' : 'is-cleared']
    .filter(Boolean)
    .join(' ');
  const show = () => go(incidentHref(i.id));
  return (
    <>
      <tbody class="incident-group">
        <tr
          class={cls}
          data-testid="incident-row"
          data-incident-id={i.id}
          data-level={i.level}
          data-acknowledged={String(i.acknowledged)}
          data-exercise={String(i.exercise)}
          data-members={entry.members.length}
          tabIndex={0}
          onClick={show}
          onKeyDown={(e) => {
            if (e.key === 'Enter') show();
          }}
        >
          <td class="c-level">
            <button
              type="button"
              class="fold"
              data-testid="incident-toggle"
              aria-expanded={open}
              title={open ? t('incidentCollapse') : t('incidentExpand')}
              aria-label={open ? t('incidentCollapse') : t('incidentExpand')}
              onClick={(e) => {
                e.stopPropagation();
                toggle(i.id, !open);
              }}
            >
              {open ? '▾' : '▸'}
            </button>
            <LevelBadge level={i.level} />
          </td>
          <td class="c-title">
            <div class="title-main">{lang === 'zh' ? i.title.zh : i.title.en}</div>
            <div class="title-sub">{lang === 'zh' ? i.title.en : i.title.zh}</div>
          </td>
          <td class="c-summary" colSpan={3} data-testid="incident-summary">
            <strong>{incidentSummary(i)}</strong>
            <span class="muted"> · {tn('incidentDevices', i.summary.devices)}</span>
          </td>
          <td class="c-dept">{departmentList(i.departments)}</td>
          <td class="c-state">
            <IncidentState incident={i} />
          </td>
          <td class="c-time mono" title={formatTime(i.opened_at)}>
            {formatShort(i.opened_at)}
          </td>
        </tr>
      </tbody>
      {open && entry.members.length > 0 && (
        <tbody class="incident-members" data-testid="incident-members" data-incident-id={i.id}>
          {entry.members.map((a) => (
            <AlertRow key={a.id} alert={a} member />
          ))}
        </tbody>
      )}
    </>
  );
}

export function IncidentTable({ entries }: { entries: Entry[] }) {
  useLang();
  if (entries.length === 0) return <p class="empty">{t('noAlerts')}</p>;
  return (
    <table class="alerts incidents">
      <AlertHead title={t('colIncident')} />
      {entries.map((e) =>
        e.kind === 'incident' ? (
          <IncidentRows key={e.incident.id} entry={e} />
        ) : (
          <tbody key={e.alert.id}>
            <AlertRow alert={e.alert} />
          </tbody>
        ),
      )}
    </table>
  );
}
