// The officer's alerts, kept live: the list from GET /api/alerts, then every change pushed over Server-Sent Events
// (GET /api/alerts/stream?token=...). An `alert` event is a new version of one alert: replace by id, the higher
// `seq` wins. `reload` means this client fell behind: reconnect and fetch the list again. A dropped stream is
// reconnected with backoff (1 s doubling to 30 s); each (re)connection fetches the list once the stream is `ready`,
// so nothing that happened while it was down is missed.
import { api } from '../api';
import { session } from '../auth';
import { createStore } from '../lib/store';
import type { Alert } from '../types';

export type LiveState = 'connecting' | 'live' | 'down';

export const alerts = createStore<ReadonlyMap<string, Alert>>(new Map());
export const liveState = createStore<LiveState>('connecting');
/** true once the board asked for closed alerts too (state=all); the list fetches then include them */
export const withClosed = createStore(false);

const LIST_LIMIT = 5000;
const MAX_BACKOFF_MS = 30_000;

let source: EventSource | null = null;
let retryTimer: number | undefined;
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
  const list = await api.alerts({ state, limit: LIST_LIMIT });
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
  es.addEventListener('ready', () => {
    if (gen !== generation) return;
    liveState.set('live');
    backoff = 1000;
    refetch().catch(() => {
      /* a failed list fetch: the stream still delivers changes; the next reconnection fetches again */
    });
  });
  es.addEventListener('alert', (e) => {
    try {
      merge([JSON.parse((e as MessageEvent<string>).data) as Alert]);
    } catch {
      /* a malformed message: skip it */
    }
  });
  es.addEventListener('reload', () => {
    es.close();
    if (gen === generation) connect();
  });
  es.onerror = () => {
    es.close();
    if (gen !== generation) return;
    liveState.set('down');
    // EventSource hides the status: ask /api/me, which signs the officer out on a 401.
    api.me().catch(() => undefined);
    retryTimer = window.setTimeout(() => {
      if (gen === generation) connect();
    }, backoff);
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
  };
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
  window.clearTimeout(flushTimer);
  flushTimer = undefined;
  pending = [];
  receivedAt.clear();
  backoff = 1000;
  alerts.set(new Map());
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
