// The officer's alerts, kept live: the list from GET /api/alerts, then every change pushed over Server-Sent Events
// (GET /api/alerts/stream?token=...). An `alert` event is a new version of one alert: replace by id, the higher
// `seq` wins. `reload` means this client fell behind: reconnect and fetch the list again. A dropped stream is
// reconnected with backoff (1 s doubling to 30 s); each (re)connection fetches the list once the stream is `ready`,
// so nothing that happened while it was down is missed. The server sends a `ping` event every `ping_s` seconds (told
// in `ready`): a connection that stays silent for three of them is dead even though no error came (a server frozen,
// a NAT or proxy that dropped the flow), and is closed and reconnected like a dropped one.
// The stream's `incident` events (and GET /api/incidents, fetched with the list) feed the incidents' store
// (incidents.ts): the board folds each incident's member alerts under it.
import { api } from '../api';
import { session } from '../auth';
import { createStore } from '../lib/store';
import type { Alert, Incident } from '../types';
import { mergeIncidents, refetchIncidents, resetIncidents } from './incidents';

export type LiveState = 'connecting' | 'live' | 'down';

export const alerts = createStore<ReadonlyMap<string, Alert>>(new Map());
export const liveState = createStore<LiveState>('connecting');
/** true once the board asked for closed alerts too (state=all); the list fetches then include them */
export const withClosed = createStore(false);

const LIST_LIMIT = 5000;
const MAX_BACKOFF_MS = 30_000;
const MISSED_PINGS = 3;
const DEFAULT_PING_S = 15;

let source: EventSource | null = null;
let retryTimer: number | undefined;
let watchdog: number | undefined;
let pingMs = DEFAULT_PING_S * 1000; // the server's heartbeat, as its last `ready` told
let backoff = 1000;
let pending: Alert[] = [];
let flushTimer: number | undefined;
const receivedAt = new Map<string, number>(); // id -> when a pushed version arrived (client clock)
let generation = 0; // bumped by stop(): late answers of an old session are dropped

function newer(a: Alert, current: Alert | undefined): boolean {
  return !current || a.seq > current.seq;
}

/** Apply pushed versions in batches (a drill can push hundreds a second). */
export function merge(list: Alert[]): void {
  pending.push(...list);
  if (flushTimer === undefined) flushTimer = window.setTimeout(flush, 50);
}

function flush(): void {
  flushTimer = undefined;
  const batch = pending;
  pending = [];
  const current = alerts.get();
  const now = Date.now();
  let next: Map<string, Alert> | null = null;
  for (const a of batch) {
    receivedAt.set(a.id, now);
    if (newer(a, (next ?? current).get(a.id))) {
      next ??= new Map(current);
      next.set(a.id, a);
    }
  }
  if (next) alerts.set(next);
}

/** Fetch the list and make it the store, keeping any pushed version newer than what the list returned (and any
 * alert first pushed while the list was on its way). */
export async function refetch(): Promise<void> {
  const gen = generation;
  const started = Date.now();
  const state = withClosed.get() ? 'all' : 'open';
  const [list] = await Promise.all([api.alerts({ state, limit: LIST_LIMIT }), refetchIncidents(state === 'all')]);
  if (gen !== generation) return;
  flush();
  const next = new Map<string, Alert>();
  for (const a of list) next.set(a.id, a);
  for (const [id, a] of alerts.get()) {
    const fetched = next.get(id);
    if (fetched ? a.seq > fetched.seq : (receivedAt.get(id) ?? 0) >= started) next.set(id, a);
  }
  receivedAt.clear();
  alerts.set(next);
}

function connect(): void {
  const token = session.get().token;
  if (!token) return;
  const gen = generation;
  liveState.set('connecting');
  const es = new EventSource(`/api/alerts/stream?token=${encodeURIComponent(token)}`);
  source = es;
  const heard = (): void => {
    window.clearTimeout(watchdog);
    watchdog = window.setTimeout(() => {
      if (gen === generation && source === es) dropped();
    }, MISSED_PINGS * pingMs);
  };
  heard(); // a server that never answers at all counts as dead too
  es.addEventListener('ping', heard);
  es.addEventListener('ready', (e) => {
    if (gen !== generation) return;
    try {
      const told = (JSON.parse((e as MessageEvent<string>).data) as { ping_s?: number }).ping_s;
      if (typeof told === 'number' && told > 0) pingMs = told * 1000;
    } catch {
      /* an older server: keep the default */
    }
    heard();
    liveState.set('live');
    backoff = 1000;
    refetch().catch(() => {
      /* a failed list fetch: the stream still delivers changes; the next reconnection fetches again */
    });
  });
  es.addEventListener('alert', (e) => {
    heard();
    try {
      merge([JSON.parse((e as MessageEvent<string>).data) as Alert]);
    } catch {
      /* a malformed message: skip it */
    }
  });
  es.addEventListener('incident', (e) => {
    heard();
    try {
      mergeIncidents([JSON.parse((e as MessageEvent<string>).data) as Incident]);
    } catch {
      /* a malformed message: skip it */
    }
  });
  es.addEventListener('reload', () => {
    es.close();
    window.clearTimeout(watchdog);
    if (gen === generation) connect();
  });
  const dropped = (): void => {
    es.close();
    window.clearTimeout(watchdog);
    if (gen !== generation) return;
    liveState.set('down');
    // EventSource hides the status: ask /api/me, which signs the officer out on a 401.
    api.me().catch(() => undefined);
    retryTimer = window.setTimeout(() => {
      if (gen === generation) connect();
    }, backoff);
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
  };
  es.onerror = dropped;
}

export function start(): void {
  stop();
  connect();
}

export function stop(): void {
  generation += 1;
  source?.close();
  source = null;
  window.clearTimeout(retryTimer);
  window.clearTimeout(watchdog);
  window.clearTimeout(flushTimer);
  flushTimer = undefined;
  pending = [];
  receivedAt.clear();
  backoff = 1000;
  alerts.set(new Map());
  resetIncidents();
  liveState.set('connecting');
}

/** Include closed alerts (the board's "all" state): fetch them once, then the stream keeps them current. */
export async function includeClosed(on: boolean): Promise<void> {
  if (withClosed.get() === on) return;
  withClosed.set(on);
  if (on) await refetch();
}

/** Apply an alert returned by an action (ack, close) at once, without waiting for the stream. */
export function applyLocal(a: Alert): void {
  merge([a]);
}

session.subscribe((s) => {
  if (!s.token) stop();
});
