// The tables of an incident's page and its report: member alerts, the incident's messages, the officers' actions and
// who was told on which channel when.
import { actionName, departmentList, departmentName, incidentEventName, t, useLang } from '../i18n';
import { formatTime } from '../format';
import type { Alert, DeliveryEntry, IncidentAction, IncidentHistoryEntry, Level } from '../types';
import { LEVELS } from '../types';
import { AlertHead, AlertRow } from './AlertTable';
import { LevelBadge } from './LevelBadge';

const badge = (level: string) => (LEVELS.includes(level as Level) ? <LevelBadge level={level as Level} /> : <span>{level}</span>);

/** Every member alert (a row opens its alert page), worst first. */
export function MembersTable({ alerts }: { alerts: Alert[] }) {
  useLang();
  if (alerts.length === 0) return <p class="empty">{t('none')}</p>;
  return (
    <table class="alerts" data-testid="incident-member-table">
      <AlertHead />
      <tbody>
        {alerts.map((a) => (
          <AlertRow key={a.id} alert={a} member />
        ))}
      </tbody>
    </table>
  );
}

export function MessagesTable({ history }: { history: IncidentHistoryEntry[] }) {
  useLang();
  if (history.length === 0) return <p class="empty">{t('none')}</p>;
  return (
    <table class="grid" data-testid="incident-messages">
      <thead>
        <tr>
          <th>#</th>
          <th>{t('time')}</th>
          <th>{t('colEvent')}</th>
          <th>{t('colLevel')}</th>
          <th>{t('colAlerts')}</th>
          <th>{t('colState')}</th>
          <th>{t('colDepartments')}</th>
        </tr>
      </thead>
      <tbody>
        {[...history].sort((a, b) => a.seq - b.seq).map((h) => (
          <tr key={h.seq} data-event={h.event}>
            <td class="mono">{h.seq}</td>
            <td class="mono">{formatTime(h.at)}</td>
            <td>{incidentEventName(h.event)}</td>
            <td>{badge(h.level)}</td>
            <td class="mono">{h.alerts}</td>
            <td class="small">
              {h.closed ? t('closed') : h.active ? t('active') : t('cleared')} ·{' '}
              {h.acknowledged ? t('acknowledged') : t('unacknowledged')}
            </td>
            <td class="small">{departmentList(h.departments)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function ActionsTable({ actions }: { actions: IncidentAction[] }) {
  useLang();
  if (actions.length === 0) return <p class="empty">{t('none')}</p>;
  return (
    <table class="grid" data-testid="incident-actions">
      <thead>
        <tr>
          <th>{t('time')}</th>
          <th>{t('colKindAction')}</th>
          <th>{t('by')}</th>
          <th>{t('colDepartments')}</th>
          <th>{t('colAlerts')}</th>
          <th>{t('ackNote')}</th>
        </tr>
      </thead>
      <tbody>
        {actions.map((a, n) => (
          <tr key={n}>
            <td class="mono">{formatTime(a.at)}</td>
            <td>{actionName(a.kind)}</td>
            <td>
              <strong>{a.by}</strong>
            </td>
            <td class="small">{departmentList(a.departments)}</td>
            <td class="mono">{a.alert_ids.length}</td>
            <td>{a.note || '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function DeliveriesTable({ deliveries }: { deliveries: DeliveryEntry[] }) {
  useLang();
  if (deliveries.length === 0) return <p class="empty">{t('none')}</p>;
  return (
    <table class="grid" data-testid="incident-deliveries">
      <thead>
        <tr>
          <th>{t('time')}</th>
          <th>#</th>
          <th>{t('colEvent')}</th>
          <th>{t('colChannel')}</th>
          <th>{t('colDepartments')}</th>
          <th>{t('colTarget')}</th>
          <th>{t('colResult')}</th>
        </tr>
      </thead>
      <tbody>
        {deliveries.map((d, n) => (
          <tr key={n} class={d.delivered ? '' : 'undelivered'}>
            <td class="mono">{formatTime(d.at)}</td>
            <td class="mono">{d.seq}</td>
            <td>{incidentEventName(d.event)}</td>
            <td class="mono">{d.channel}</td>
            <td>{departmentName(d.department)}</td>
            <td class="mono small">{d.target}</td>
            <td>{d.delivered ? t('delivered') : `${t('notDelivered')}${d.reason ? `: ${d.reason}` : ''}`}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
