// Filtering, ordering and counting the board's alerts (pure functions over the live store).
import { createStore } from '../lib/store';
import type { Alert, Department, Hazard, Level } from '../types';
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
