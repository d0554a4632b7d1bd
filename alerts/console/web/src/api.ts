// Calls to the backend's /api/ with the officer's bearer token. A 401 signs the officer out (back to #/login);
// other failures raise ApiError with the server's `detail` text, which the views show as it is.
import { session, signOut } from './auth';
import type { Alert, AlertDetail, Device, DevicePage, Health, Incident, IncidentDetail, Officer, Readings, Report } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

function detailText(body: unknown, fallback: string): string {
  if (body && typeof body === 'object' && 'detail' in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === 'string') return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((d) => (d && typeof d === 'object' && 'msg' in d ? String((d as { msg: unknown }).msg) : String(d)))
        .join('; ');
    }
  }
  return fallback;
}

interface Options {
  method?: string;
  body?: unknown;
  /** a token to try instead of the session's (the login page); a 401 then does not sign anyone out */
  token?: string;
  accept?: string;
  signal?: AbortSignal;
}

export async function request(path: string, opts: Options = {}): Promise<Response> {
  const token = opts.token ?? session.get().token;
  const headers: Record<string, string> = { Accept: opts.accept ?? 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method: opts.method ?? 'GET',
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
    cache: 'no-store',
  });
  if (res.ok) return res;
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (res.status === 401 && opts.token === undefined) signOut(true);
  throw new ApiError(res.status, detailText(body, `${res.status} ${res.statusText}`));
}

export async function getJson<T>(path: string, opts: Options = {}): Promise<T> {
  return (await request(path, opts)).json() as Promise<T>;
}

export const api = {
  me: (token?: string) => getJson<Officer>('/api/me', { token }),
  alerts: (query: Query, signal?: AbortSignal) => getJson<Alert[]>(withQuery('/api/alerts', query), { signal }),
  alert: (id: string) => getJson<AlertDetail>(`/api/alerts/${encodeURIComponent(id)}`),
  ack: (id: string, note: string) =>
    getJson<Alert>(`/api/alerts/${encodeURIComponent(id)}/ack`, { method: 'POST', body: { note } }),
  close: (id: string, note: string) =>
    getJson<Alert>(`/api/alerts/${encodeURIComponent(id)}/close`, { method: 'POST', body: { note } }),
  cap: (id: string) => request(`/api/alerts/${encodeURIComponent(id)}/cap`, { accept: 'application/cap+xml, */*' }),
  devices: (query: Query, signal?: AbortSignal) =>
    getJson<DevicePage>(withQuery('/api/devices', query), { signal }),
  device: (id: string) => getJson<Device>(`/api/devices/${encodeURIComponent(id)}`),
  health: (id: string) => getJson<Health>(`/api/devices/${encodeURIComponent(id)}/health`),
  readings: (id: string, query: Query, signal?: AbortSignal) =>
    getJson<Readings>(withQuery(`/api/devices/${encodeURIComponent(id)}/readings`, query), { signal }),
  // incidents (issue 21)
  incidents: (query: Query, signal?: AbortSignal) =>
    getJson<Incident[]>(withQuery('/api/incidents', query), { signal }),
  incident: (id: string) => getJson<IncidentDetail>(`/api/incidents/${encodeURIComponent(id)}`),
  incidentAck: (id: string, note: string) =>
    getJson<Incident>(`/api/incidents/${encodeURIComponent(id)}/ack`, { method: 'POST', body: { note } }),
  incidentClose: (id: string, note: string) =>
    getJson<Incident>(`/api/incidents/${encodeURIComponent(id)}/close`, { method: 'POST', body: { note } }),
  incidentReport: (id: string) => getJson<Report>(`/api/incidents/${encodeURIComponent(id)}/report`),
  incidentReportHtml: (id: string) =>
    request(`/api/incidents/${encodeURIComponent(id)}/report.html`, { accept: 'text/html' }),
};

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
