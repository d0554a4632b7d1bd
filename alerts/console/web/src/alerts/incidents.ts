// The officer's incidents, kept live beside the alerts (live.ts runs the stream): the list from
// GET /api/incidents, then every `incident` event of GET /api/alerts/stream. An incident changes between its
// messages without a new `seq` (members join while its first message waits for others), so a pushed version
// replaces the one held unless its `seq` is lower: the stream delivers one incident's versions in order. A merged
// incident (`merged_into`) goes: the older one goes on with its members, whose alerts name it.
import { api } from '../api';
import { createStore } from '../lib/store';
import type { Alert, Incident } from '../types';

export const incidents = createStore<ReadonlyMap<string, Incident>>(new Map());

const LIST_LIMIT = 5000;
let pending: Incident[] = [];
let flushTimer: number | undefined;
const receivedAt = new Map<string, number>();
let generation = 0;

function apply(current: ReadonlyMap<string, Incident>, batch: Incident[]): Map<string, Incident> | null {
  let next: Map<string, Incident> | null = null;
  for (const i of batch) {
    const held = (next ?? current).get(i.id);
    if (held && i.seq < held.seq) continue;
    next ??= new Map(current);
    if (i.merged_into) next.delete(i.id);
    else next.set(i.id, i);
  }
  return next;
}

/** Apply pushed versions in batches (a drill can push hundreds a second). */
export function mergeIncidents(list: Incident[]): void {
  const now = Date.now();
  for (const i of list) receivedAt.set(i.id, now);
  pending.push(...list);
  if (flushTimer === undefined) flushTimer = window.setTimeout(flushIncidents, 50);
}

function flushIncidents(): void {
  window.clearTimeout(flushTimer);
  flushTimer = undefined;
  const batch = pending;
  pending = [];
  const next = apply(incidents.get(), batch);
  if (next) incidents.set(next);
}

/** Fetch the list (open ones, or every one with `all`) and make it the store, keeping a pushed version newer than
 * the listed one and any incident first pushed while the list was on its way. */
export async function refetchIncidents(all: boolean): Promise<void> {
  const gen = generation;
  const started = Date.now();
  const list = await api.incidents({ state: all ? 'all' : 'open', limit: LIST_LIMIT });
  if (gen !== generation) return;
  flushIncidents();
  const next = new Map<string, Incident>();
  for (const i of list) next.set(i.id, i);
  for (const [id, i] of incidents.get()) {
    const fetched = next.get(id);
    if (fetched ? i.seq > fetched.seq : (receivedAt.get(id) ?? 0) >= started) next.set(id, i);
  }
  receivedAt.clear();
  incidents.set(next);
}

export function resetIncidents(): void {
  generation += 1;
  window.clearTimeout(flushTimer);
  flushTimer = undefined;
  pending = [];
  receivedAt.clear();
  incidents.set(new Map());
}

/** Apply an incident returned by an action (ack, close) at once. */
export function applyIncident(i: Incident): void {
  mergeIncidents([i]);
}

/** The incident an alert belongs to, as this console holds it (none: the alert stands on its own). */
export function incidentOf(a: Alert, held: ReadonlyMap<string, Incident> = incidents.get()): Incident | undefined {
  return a.incident_id ? held.get(a.incident_id) : undefined;
}
