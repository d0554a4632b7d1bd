// The language (zh-CN by default, English switchable) and the lookups into the dictionary (strings.ts). Components
// call `t`; enumerations (levels, hazards, departments, events, ...) go through the helpers below.
import { createStore, useStore } from './lib/store';
import { ENUMS, LEVEL_NAMES, en, zh, type Key } from './strings';
import type { AlertEvent, Department, DeviceKind, DeviceStatus, Hazard, Level } from './types';

export type Lang = 'zh' | 'en';

export const lang = createStore<Lang>(readLang());

function readLang(): Lang {
  try {
    return localStorage.getItem('smartcity.lang') === 'en' ? 'en' : 'zh';
  } catch {
    return 'zh';
  }
}

export function setLang(next: Lang): void {
  try {
    localStorage.setItem('smartcity.lang', next);
  } catch {
    /* private mode: the choice lasts for this page */
  }
  document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
  lang.set(next);
}

/** Re-renders the calling component when the language changes. */
export function useLang(): Lang {
  return useStore(lang);
}

export function t(key: Key): string {
  return (lang.get() === 'zh' ? zh : en)[key];
}

/** A string with a number in it: tn('agoM', 3) is "3 分钟前". */
export function tn(key: Key, n: number): string {
  return t(key).replace('{n}', String(n));
}

function pick(group: string, value: string): string {
  const names = ENUMS[group]?.[value];
  if (!names) return value;
  return lang.get() === 'zh' ? names[0] : names[1];
}

/** "红色 Red": both names always, so a level is never misread whatever the language. */
/** A list as the language writes it: 应急管理、消防救援 / Emergency, Fire. */
export const joinList = (items: string[]): string => items.join(lang.get() === 'zh' ? '、' : ', ');

export const levelName = (level: Level): string => `${LEVEL_NAMES[level].zh} ${LEVEL_NAMES[level].en}`;
export const levelShort = (level: Level): string =>
  lang.get() === 'zh' ? LEVEL_NAMES[level].zh : LEVEL_NAMES[level].en;
export const levelRoman = (level: Level): string => LEVEL_NAMES[level].roman;
export const hazardName = (h: Hazard | string): string => pick('hazard', h);
export const departmentName = (d: Department | string): string => pick('department', d);
export const eventName = (e: AlertEvent | string): string => pick('event', e);
export const kindName = (k: DeviceKind | string): string => pick('kind', k);
export const statusName = (s: DeviceStatus | string): string => pick('status', s);
export const departmentList = (ds: (Department | string)[]): string => joinList(ds.map(departmentName));
// incidents (issue 21)
export const incidentEventName = (e: string): string => pick('incidentEvent', e);
export const actionName = (k: string): string => pick('action', k);
