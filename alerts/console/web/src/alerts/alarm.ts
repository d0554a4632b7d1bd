// The audible alarm, per incident (issue 21), not per alert: one sound when an incident is first heard of (its first
// message, seq >= 1, neither closed nor acknowledged), when its level rises, and when it reminds (active and nobody
// acknowledged: the service's escalation policy repeats it); its member alerts sound nothing of their own, so a
// leak's ten detectors are one sound, not ten. An alert that belongs to no incident (one from before incidents
// existed) sounds the same way by itself. An incident none of whose departments is notified now (every one silenced
// or inhibited) sounds nothing, as no channel tells anyone of it.
// Real incidents beep high (880 Hz, three short beeps); drills beep low (440 Hz, one beep) so a drill is never taken
// for a real event by ear either. Browsers only allow sound after a user gesture: the login click is one, and any
// click resumes it after a page reload (a sound due before that plays then). The mute choice is kept in localStorage.
import { session } from '../auth';
import { createStore } from '../lib/store';
import type { Alert, Incident, Level } from '../types';
import { incidents } from './incidents';
import { alerts } from './live';

const MUTE_KEY = 'smartcity.muted';
const RANK: Record<Level, number> = { red: 3, orange: 2, yellow: 1, blue: 0 };
/** a sound the browser held back is played on the next gesture only if it is this recent */
const PENDING_MS = 5 * 60_000;

export const muted = createStore<boolean>(readMuted());
/** true while a sound was due but the browser has not allowed audio yet (no user gesture) */
export const soundBlocked = createStore(false);

let ctx: AudioContext | null = null;
let pending: { real: boolean; at: number } | null = null;
/** what was last heard of each incident (and of each alert without one): its message number and level */
const heard = new Map<string, { seq: number; level: Level }>();

function readMuted(): boolean {
  try {
    return localStorage.getItem(MUTE_KEY) === '1';
  } catch {
    return false;
  }
}

export function setMuted(on: boolean): void {
  try {
    localStorage.setItem(MUTE_KEY, on ? '1' : '0');
  } catch {
    /* kept for this page only */
  }
  muted.set(on);
  if (on) {
    pending = null;
    soundBlocked.set(false);
  }
}

/** Call from a user gesture (the login click, any click): creates or resumes the audio context. */
export function unlockAudio(): void {
  const Ctor = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
  if (!Ctor) return;
  ctx ??= new Ctor();
  if (ctx.state === 'suspended') void ctx.resume().then(playPending, () => undefined);
  else playPending();
}

function playPending(): void {
  if (!ctx || ctx.state !== 'running') return;
  soundBlocked.set(false);
  const due = pending;
  pending = null;
  if (due && Date.now() - due.at < PENDING_MS && !muted.get()) chime(due.real);
}

/** An alert that flashes on the board: active, red, open and nobody acknowledged (a member of an incident does not:
 * its incident's row flashes). */
export const isAlarming = (a: Alert | Incident): boolean => a.level === 'red' && a.active && !a.acknowledged && !a.closed;

const isMuted = (x: Alert | Incident): boolean =>
  x.departments.length > 0 && x.departments.every((d) => x.muted_departments.includes(d));

/** Whether this version of an incident (or lone alert) calls for a sound, given what was heard of it before. */
export function calls(x: Alert | Incident, before: { seq: number; level: Level } | undefined): boolean {
  if (x.seq < 1 || x.closed || x.acknowledged || isMuted(x)) return false;
  if (!before) return true; // first heard of
  if (x.seq <= before.seq) return false;
  return RANK[x.level] > RANK[before.level] || x.event === 'reminder';
}

function beep(at: number, freq: number, length: number): void {
  if (!ctx) return;
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = 'square';
  osc.frequency.value = freq;
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(0.12, at + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
  osc.connect(gain).connect(ctx.destination);
  osc.start(at);
  osc.stop(at + length + 0.02);
}

function chime(real: boolean): void {
  if (!ctx) return;
  const now = ctx.currentTime + 0.02;
  if (real) {
    for (let i = 0; i < 3; i++) beep(now + i * 0.18, 880, 0.12);
  } else {
    beep(now, 440, 0.3);
  }
}

/** Once per change of the stores: at most one sound, the real one if any real incident calls for it. */
function sound(items: Iterable<Alert | Incident>): void {
  let real = false;
  let drill = false;
  for (const x of items) {
    if (x.seq < 1) continue; // an incident before its first message (it waits for more members)
    const before = heard.get(x.id);
    if (calls(x, before)) {
      if (x.exercise) drill = true;
      else real = true;
    }
    if (!before || x.seq > before.seq) heard.set(x.id, { seq: x.seq, level: x.level });
  }
  if (!(real || drill) || muted.get()) return;
  if (ctx && ctx.state === 'running') chime(real);
  else {
    pending = { real: real || (pending?.real ?? false), at: Date.now() };
    soundBlocked.set(true);
  }
}

incidents.subscribe((all) => sound(all.values()));
alerts.subscribe((all) => {
  const lone: Alert[] = [];
  for (const a of all.values()) if (!a.incident_id) lone.push(a);
  sound(lone);
});
session.subscribe((s) => {
  if (!s.token) {
    heard.clear();
    pending = null;
    soundBlocked.set(false);
  }
});
document.addEventListener('pointerdown', unlockAudio, { capture: true });
document.addEventListener('keydown', unlockAudio, { capture: true });
