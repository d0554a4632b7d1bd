import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, errorText } from '../api';
import { departmentName, kindName, statusName, t, useLang } from '../i18n';
import { formatAgo, formatNumber, formatTime } from '../format';
import { createStore, useStore } from '../lib/store';
import { deviceHref, go } from '../router';
import type { DevicePage } from '../types';
import { DEPARTMENTS, DEVICE_KINDS } from '../types';

const PAGE = 200;

interface Query {
  kind: string;
  status: string;
  department: string;
  offset: number;
  text: string;
}

/** Kept while the officer moves between pages. */
const query = createStore<Query>({ kind: '', status: '', department: '', offset: 0, text: '' });

function setQuery(patch: Partial<Query>): void {
  query.update((q) => ({ ...q, offset: 0, ...patch }));
}

function Choice({ testid, label, value, options, field }: { testid: string; label: string; value: string; options: [string, string][]; field: 'kind' | 'status' | 'department' }) {
  return (
    <label class="filter">
      <span>{label}</span>
      <select data-testid={testid} value={value} onChange={(e) => setQuery({ [field]: (e.target as HTMLSelectElement).value })}>
        <option value="">{t('filterAll')}</option>
        {options.map(([v, text]) => (
          <option key={v} value={v}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The registry's devices, a page at a time, with their health; search filters the loaded page. */
export function DevicesView() {
  useLang();
  const q = useStore(query);
  const [page, setPage] = useState<DevicePage | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    api
      .devices({ kind: q.kind, status: q.status, department: q.department, offset: q.offset, limit: PAGE }, abort.signal)
      .then(setPage, (err) => {
        if (!abort.signal.aborted) setError(errorText(err));
      });
    return () => abort.abort();
  }, [q.kind, q.status, q.department, q.offset]);

  const rows = useMemo(() => {
    const needle = q.text.trim().toLowerCase();
    const list = page?.devices ?? [];
    if (!needle) return list;
    return list.filter((d) => [d.id, d.site_name, d.site_id].some((s) => s.toLowerCase().includes(needle)));
  }, [page, q.text]);

  const now = Date.now();
  const total = page?.total ?? 0;
  return (
    <div class="devices">
      <div class="filters">
        <input
          type="search"
          class="search"
          data-testid="device-search"
          placeholder={t('search')}
          value={q.text}
          onInput={(e) => query.update((p) => ({ ...p, text: (e.target as HTMLInputElement).value }))}
        />
        <Choice testid="device-filter-kind" label={t('kind')} value={q.kind} field="kind" options={DEVICE_KINDS.map((k) => [k, kindName(k)])} />
        <Choice testid="device-filter-status" label={t('status')} value={q.status} field="status" options={['online', 'offline'].map((s) => [s, statusName(s)])} />
        <Choice testid="device-filter-department" label={t('filterDepartment')} value={q.department} field="department" options={DEPARTMENTS.map((d) => [d, departmentName(d)])} />
        <span class="spacer" />
        <span class="muted">
          {t('total')} {total} · {Math.min(total, q.offset + 1)}–{Math.min(total, q.offset + PAGE)}
        </span>
        <button type="button" class="btn" data-testid="device-prev" disabled={q.offset === 0} onClick={() => query.update((p) => ({ ...p, offset: Math.max(0, p.offset - PAGE) }))}>
          {t('prev')}
        </button>
        <button type="button" class="btn" data-testid="device-next" disabled={q.offset + PAGE >= total} onClick={() => query.update((p) => ({ ...p, offset: p.offset + PAGE }))}>
          {t('next')}
        </button>
      </div>
      {error && <p class="error">{t('error') + error}</p>}
      {!page && !error && <p class="empty">{t('loading')}</p>}
      {page && (
        <table class="grid">
          <thead>
            <tr>
              <th>{t('colId')}</th>
              <th>{t('colKind')}</th>
              <th>{t('colSite')}</th>
              <th>{t('colStatus')}</th>
              <th>{t('colLastSeen')}</th>
              <th>{t('colBattery')}</th>
              <th>{t('colRssi')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => {
              const h = page.health?.[d.id];
              const status = h?.status ?? 'offline';
              return (
                <tr key={d.id} class="device-row" data-testid="device-row" data-device-id={d.id} data-status={status} tabIndex={0} onClick={() => go(deviceHref(d.id))} onKeyDown={(e) => e.key === 'Enter' && go(deviceHref(d.id))}>
                  <td class="mono">
                    <a href={deviceHref(d.id)}>{d.id}</a>
                  </td>
                  <td>{kindName(d.kind)}</td>
                  <td>
                    {d.site_name} <span class="muted mono small">{d.site_id}</span>
                  </td>
                  <td>
                    <span class={`st st-${status}`} title={h?.reason}>
                      {statusName(status)}
                    </span>
                  </td>
                  <td class="mono" title={formatTime(h?.last_seen)}>
                    {h?.last_seen ? formatAgo(h.last_seen, now) : t('never')}
                  </td>
                  <td class="mono">{h?.battery_pct != null ? `${formatNumber(h.battery_pct, 0)} %` : '—'}</td>
                  <td class="mono">{h?.rssi_dbm != null ? `${formatNumber(h.rssi_dbm, 0)} dBm` : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {page && rows.length === 0 && <p class="empty">{t('none')}</p>}
    </div>
  );
}
