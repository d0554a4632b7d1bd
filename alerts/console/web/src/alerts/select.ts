// Filtering, ordering and counting the board's alerts (pure functions over the live store).
import { createStore } from '../lib/store';
import type { Alert, Department, Hazard, Incident, Level } from '../types';
import { LEVELS } from '../types';

export interface Filters {
  department: Department | '';
  hazard: Hazard | '';
  level: Level | '';
  state: 'open' | 'all';
}

/** The board's filters, kept while the officer moves between pages. */
export const filters = createStore<Filters>({ department: '', hazard: '', level: '', state: 'open' });

export const RANK: Record<Level, number> = { red: 3, orange: 2, yellow: 1, blue: 0 };

/** Red first, then orange, yellow, blue; within a level the newest first. */
export function byLevelThenNewest(a: Alert, b: Alert): number {
  return RANK[b.level] - RANK[a.level] || b.opened_at - a.opened_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export function matches(a: Alert, f: Filters): boolean {
  return (
    (f.state === 'all' || !a.closed) &&
    (!f.department || a.departments.includes(f.department)) &&
    (!f.hazard || a.hazard === f.hazard) &&
    (!f.level || a.level === f.level)
  );
}

export function select(all: Iterable<Alert>, f: Filters): { real: Alert[]; drill: Alert[]; anyDrill: boolean } {
  const real: Alert[] = [];
  const drill: Alert[] = [];
  let anyDrill = false;
  for (const a of all) {
    if (a.exercise && !a.closed) anyDrill = true;
    if (!matches(a, f)) continue;
    (a.exercise ? drill : real).push(a);
  }
  real.sort(byLevelThenNewest);
  drill.sort(byLevelThenNewest);
  return { real, drill, anyDrill: anyDrill || drill.length > 0 };
}

export type Counts = Record<Level, number>;

/** Open alerts per level, real and drill apart (as GET /api/alerts/summary counts them). */
export function countOpen(all: Iterable<Alert>): { real: Counts; exercise: Counts } {
  const zero = (): Counts => Object.fromEntries(LEVELS.map((l) => [l, 0])) as Counts;
  const out = { real: zero(), exercise: zero() };
  for (const a of all) {
    if (!a.closed) out[a.exercise ? 'exercise' : 'real'][a.level] += 1;
  }
  return out;
}

// incidents (issue 21): the board lists incidents, their member alerts folded under them; an alert whose incident
// this console does not hold (or that has none) is a row of its own.

export type Entry = { kind: 'incident'; incident: Incident; members: Alert[] } | { kind: 'alert'; alert: Alert };

export function incidentMatches(i: Incident, f: Filters): boolean {
  return (
    (f.state === 'all' || !i.closed) &&
    (!f.department || i.departments.includes(f.department)) &&
    (!f.hazard || i.hazard === f.hazard) &&
    (!f.level || i.level === f.level)
  );
}

const entryLevel = (e: Entry): Level => (e.kind === 'incident' ? e.incident.level : e.alert.level);
const entryOpened = (e: Entry): number => (e.kind === 'incident' ? e.incident.opened_at : e.alert.opened_at);
const entryId = (e: Entry): string => (e.kind === 'incident' ? e.incident.id : e.alert.id);

/** Red first, then orange, yellow, blue; within a level the newest first (incidents and lone alerts together). */
export function entryOrder(a: Entry, b: Entry): number {
  const ia = entryId(a);
  const ib = entryId(b);
  return (
    RANK[entryLevel(b)] - RANK[entryLevel(a)] ||
    entryOpened(b) - entryOpened(a) ||
    (ia < ib ? -1 : ia > ib ? 1 : 0)
  );
}

/** The board's rows: incidents matching the filters with their members (the state filter applies to members too),
 * and the alerts of no incident held here that match them; real and drill apart. */
export function selectEntries(
  all: Iterable<Alert>,
  held: ReadonlyMap<string, Incident>,
  f: Filters,
): { real: Entry[]; drill: Entry[]; anyDrill: boolean } {
  const members = new Map<string, Alert[]>();
  const real: Entry[] = [];
  const drill: Entry[] = [];
  let anyDrill = false;
  for (const a of all) {
    if (a.exercise && !a.closed) anyDrill = true;
    const inc = a.incident_id ? held.get(a.incident_id) : undefined;
    if (inc) {
      if (f.state === 'all' || !a.closed) {
        const list = members.get(inc.id);
        if (list) list.push(a);
        else members.set(inc.id, [a]);
      }
      continue;
    }
    if (matches(a, f)) (a.exercise ? drill : real).push({ kind: 'alert', alert: a });
  }
  for (const i of held.values()) {
    if (i.exercise && !i.closed) anyDrill = true;
    if (!incidentMatches(i, f)) continue;
    const list = (members.get(i.id) ?? []).sort(byLevelThenNewest);
    (i.exercise ? drill : real).push({ kind: 'incident', incident: i, members: list });
  }
  real.sort(entryOrder);
  drill.sort(entryOrder);
  return { real, drill, anyDrill: anyDrill || drill.length > 0 };
}
