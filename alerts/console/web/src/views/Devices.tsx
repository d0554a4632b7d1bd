import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from '../api';
import { departmentName, kindName, statusName, t, useLang } from '../i18n';
import { formatAgo, formatNumber, formatTime } from '../format';
import { createStore, useStore } from '../lib/store';
import { deviceHref, go } from '../router';
import type { DevicePage } from '../types';
import { DEPARTMENTS, DEVICE_KINDS } from '../types';

const PAGE = 200;
/** The search is sent once the officer has stopped typing this long, not at every key. */
const SEARCH_DEBOUNCE_MS = 250;
/** The server's sorts (devices/store.py `Sort`): by id, site id, kind or last change; `-` first is descending. */
const SORT_FIELDS: [string, () => string][] = [
  ['id', () => t('colId')],
  ['site', () => t('sortSiteId')],
  ['kind', () => t('colKind')],
  ['updated', () => t('sortUpdated')],
];

interface Query {
  kind: string;
  status: string;
  department: string;
  offset: number;
  /** the search the server was asked for (what is typed reaches it SEARCH_DEBOUNCE_MS later) */
  text: string;
  sort: string;
}

/** Kept while the officer moves between pages. */
const query = createStore<Query>({ kind: '', status: '', department: '', offset: 0, text: '', sort: 'id' });

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

/** The registry's devices, a page at a time, with their health. Search, filters and sort are the server's, over
 * every device, so the pages and the total are those of the matches (issue 21). */
export function DevicesView() {
  useLang();
  const q = useStore(query);
  const [typed, setTyped] = useState(q.text);
  const [page, setPage] = useState<DevicePage | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (typed.trim() === q.text.trim()) return;
    const timer = window.setTimeout(() => setQuery({ text: typed }), SEARCH_DEBOUNCE_MS);
    return () => window.clearTimeout(timer);
  }, [typed, q.text]);

  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    const params = { kind: q.kind, status: q.status, department: q.department, q: q.text.trim(), sort: q.sort };
    api.devices({ ...params, offset: q.offset, limit: PAGE }, abort.signal).then(setPage, (err) => {
      if (!abort.signal.aborted) setError(errorText(err));
    });
    return () => abort.abort();
  }, [q.kind, q.status, q.department, q.text, q.sort, q.offset]);

  const rows = page?.devices ?? [];

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
          value={typed}
          onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
        />
        <Choice testid="device-filter-kind" label={t('kind')} value={q.kind} field="kind" options={DEVICE_KINDS.map((k) => [k, kindName(k)])} />
        <Choice testid="device-filter-status" label={t('status')} value={q.status} field="status" options={['online', 'offline'].map((s) => [s, statusName(s)])} />
        <Choice testid="device-filter-department" label={t('filterDepartment')} value={q.department} field="department" options={DEPARTMENTS.map((d) => [d, departmentName(d)])} />
        <label class="filter">
          <span>{t('sortLabel')}</span>
          <select data-testid="device-sort" value={q.sort} onChange={(e) => setQuery({ sort: (e.target as HTMLSelectElement).value })}>
            {SORT_FIELDS.flatMap(([field, name]) => [
              <option key={field} value={field}>
                {`${name()} ${t('sortAsc')}`}
              </option>,
              <option key={`-${field}`} value={`-${field}`}>
                {`${name()} ${t('sortDesc')}`}
              </option>,
            ])}
          </select>
        </label>
        <span class="spacer" />
        <span class="muted" data-testid="device-total" data-total={total}>
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
