// The audible alarm: while any active red alert is not acknowledged, a beep every 1.5 s (Web Audio, no sound file).
// Real alerts beep high (880 Hz, three short beeps); drills beep low (440 Hz, one beep) so a drill is never taken
// for a real event by ear either. Browsers only allow sound after a user gesture: the login click is one, and any
// click resumes it after a page reload. The mute choice is kept in localStorage.
import { createStore } from '../lib/store';
import type { Alert } from '../types';
import { alerts } from './live';

const MUTE_KEY = 'smartcity.muted';
const PERIOD_MS = 1500;

export const muted = createStore<boolean>(readMuted());
/** true while the alarm should sound but the browser has not allowed audio yet (no user gesture) */
export const soundBlocked = createStore(false);

let ctx: AudioContext | null = null;
let timer: number | undefined;

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
  update();
}

/** Call from a user gesture (the login click, any click): creates or resumes the audio context. */
export function unlockAudio(): void {
  const Ctor = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
  if (!Ctor) return;
  ctx ??= new Ctor();
  if (ctx.state === 'suspended') void ctx.resume().then(update, () => undefined);
  update();
}

/** The alerts that keep the alarm going: active, red, open and nobody acknowledged. */
export const isAlarming = (a: Alert): boolean => a.level === 'red' && a.active && !a.acknowledged && !a.closed;

function alarming(): { real: boolean; drill: boolean } {
  let real = false;
  let drill = false;
  for (const a of alerts.get().values()) {
    if (!isAlarming(a)) continue;
    if (a.exercise) drill = true;
    else real = true;
  }
  return { real, drill };
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

function tick(): void {
  const { real, drill } = alarming();
  if (!ctx || ctx.state !== 'running') return;
  const now = ctx.currentTime + 0.02;
  if (real) {
    for (let i = 0; i < 3; i++) beep(now + i * 0.18, 880, 0.12);
  } else if (drill) {
    beep(now, 440, 0.3);
  }
}

function update(): void {
  const { real, drill } = alarming();
  const wanted = (real || drill) && !muted.get();
  soundBlocked.set(wanted && (!ctx || ctx.state !== 'running'));
  if (wanted && timer === undefined) {
    tick();
    timer = window.setInterval(tick, PERIOD_MS);
  } else if (!wanted && timer !== undefined) {
    window.clearInterval(timer);
    timer = undefined;
  }
}

alerts.subscribe(update);
document.addEventListener('pointerdown', unlockAudio, { capture: true });
document.addEventListener('keydown', unlockAudio, { capture: true });
