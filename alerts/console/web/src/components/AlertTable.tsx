import { departmentList, t, useLang } from '../i18n';
import { formatShort, formatTime, shownValue, valueThreshold } from '../format';
import { isAlarming } from '../alerts/alarm';
import { alertHref, go } from '../router';
import type { Alert } from '../types';
import { AlertState } from './AlertState';
import { LevelBadge } from './LevelBadge';

/** One alert's row; a `member` of an incident does not flash (its incident's row does). */
export function AlertRow({ alert: a, member = false }: { alert: Alert; member?: boolean }) {
  const lang = useLang();
  const open = () => go(alertHref(a.id));
  const cls = ['alert-row', `lv-${a.level}`, !member && isAlarming(a) ? 'flash' : '', member ? 'member-row' : '', a.closed ? 'is-closed' : '', a.active ? '' : 'is-cleared']
    .filter(Boolean)
    .join(' ');
  return (
    <tr
      class={cls}
      data-testid="alert-row"
      data-alert-id={a.id}
      data-level={a.level}
      data-acknowledged={String(a.acknowledged)}
      data-exercise={String(a.exercise)}
      tabIndex={0}
      onClick={open}
      onKeyDown={(e) => {
        if (e.key === 'Enter') open();
      }}
    >
      <td class="c-level">
        <LevelBadge level={a.level} />
      </td>
      <td class="c-title">
        <div class="title-main">{lang === 'zh' ? a.title.zh : a.title.en}</div>
        <div class="title-sub">{lang === 'zh' ? a.title.en : a.title.zh}</div>
      </td>
      <td class="c-site">{a.site_name ?? a.site_id ?? '—'}</td>
      <td class="c-device mono">{a.device_id ?? '—'}</td>
      <td class="c-value mono" data-testid="alert-value" title={shownValue(a).peak ? t('fieldPeak') : undefined}>
        {valueThreshold(a)}
      </td>
      <td class="c-dept">{departmentList(a.departments)}</td>
      <td class="c-state">
        <AlertState alert={a} />
      </td>
      <td class="c-time mono" title={formatTime(a.opened_at)}>
        {formatShort(a.opened_at)}
      </td>
    </tr>
  );
}

/** The alert tables' column heads (the board's incidents table shares them). */
export function AlertHead({ title }: { title?: string }) {
  return (
    <thead>
      <tr>
        <th>{t('colLevel')}</th>
        <th>{title ?? t('colTitle')}</th>
        <th>{t('colSite')}</th>
        <th>{t('colDevice')}</th>
        <th>{t('colValue')}</th>
        <th>{t('colDepartments')}</th>
        <th>{t('colState')}</th>
        <th>{t('colOpened')}</th>
      </tr>
    </thead>
  );
}

export function AlertTable({ alerts }: { alerts: Alert[] }) {
  useLang();
  if (alerts.length === 0) return <p class="empty">{t('noAlerts')}</p>;
  return (
    <table class="alerts">
      <AlertHead />
      <tbody>
        {alerts.map((a) => (
          <AlertRow key={a.id} alert={a} />
        ))}
      </tbody>
    </table>
  );
}
