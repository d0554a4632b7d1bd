// The backend's JSON shapes. Source of truth: core/contracts/alert.py (Alert), alerts/lifecycle.py
// (HistoryEntry), alerts/api.py (AlertDetail, Summary), alerts/officers.py (Officer), core/contracts/device.py
// (Device), devices/health.py (Health), devices/api.py (PageOut), storage/api.py (ReadingsOut).

export type Level = 'blue' | 'yellow' | 'orange' | 'red';
export type Hazard = 'gas' | 'water' | 'fire' | 'structural' | 'device';
export type Department = 'emergency' | 'fire' | 'water' | 'housing' | 'command';
export type DeviceKind = 'gas' | 'water' | 'fire' | 'structural';
export type AlertEvent =
  | 'raised'
  | 'escalated'
  | 'deescalated'
  | 'reminder'
  | 'acknowledged'
  | 'cleared'
  | 'closed';

export const LEVELS: Level[] = ['red', 'orange', 'yellow', 'blue'];
export const HAZARDS: Hazard[] = ['gas', 'water', 'fire', 'structural', 'device'];
export const DEPARTMENTS: Department[] = ['emergency', 'fire', 'water', 'housing', 'command'];
export const DEVICE_KINDS: DeviceKind[] = ['gas', 'water', 'fire', 'structural'];

export interface Text {
  zh: string;
  en: string;
}

export interface Acknowledgement {
  by: string;
  note: string;
  at: number;
}

export interface Alert {
  v: number;
  id: string;
  key: string;
  seq: number;
  event: AlertEvent;
  level: Level;
  hazard: Hazard;
  rule: string;
  device_id: string | null;
  site_id: string | null;
  site_name: string | null;
  lat: number | null;
  lon: number | null;
  metric: string | null;
  value: number | boolean | null;
  threshold: number | boolean | null;
  /** The value that raised it to its highest level (absent in messages from before it existed). */
  peak?: number | boolean | null;
  peak_threshold?: number | boolean | null;
  departments: Department[];
  active: boolean;
  acknowledged: boolean;
  acknowledgement: Acknowledgement | null;
  closed: boolean;
  closed_by: string | null;
  exercise: boolean;
  confirmed: boolean;
  flapping: boolean;
  escalations: number;
  silenced_by: string[];
  muted_departments: Department[];
  inhibited_by: string | null;
  confirms: string[];
  opened_at: number;
  updated_at: number;
  ts: number;
  title: Text;
}

export interface HistoryEntry {
  seq: number;
  event: AlertEvent;
  level: Level | string;
  at: number;
  active: boolean;
  acknowledged: boolean;
  departments: Department[];
  by: string | null;
  note: string | null;
}

export interface AlertDetail {
  alert: Alert;
  history: HistoryEntry[];
}

export interface Officer {
  name: string;
  departments: Department[];
  admin: boolean;
}

export interface Device {
  id: string;
  kind: DeviceKind;
  site_id: string;
  site_name: string;
  lat: number;
  lon: number;
  interval_s: number;
  departments: Department[];
  thresholds: Record<string, Partial<Record<Level, number>>>;
  meta: Record<string, string>;
}

export type DeviceStatus = 'online' | 'offline';

export interface Health {
  device_id: string;
  status: DeviceStatus;
  reason: string;
  last_seen: number | null;
  last_values: Record<string, number | boolean>;
  battery_pct: number | null;
  rssi_dbm: number | null;
}

export interface DevicePage {
  devices: Device[];
  total: number;
  offset: number;
  limit: number;
  health?: Record<string, Health>;
}

/** Raw: {ts, value}; aggregated (`every`): {ts, mean, min, max}; mean is null for boolean metrics. */
export interface ReadingPoint {
  ts: number;
  value?: number | boolean | null;
  mean?: number | null;
  min?: number | boolean | null;
  max?: number | boolean | null;
}

export interface Readings {
  device_id: string;
  metric: string;
  unit: string | null;
  from: number;
  to: number;
  every_s: number | null;
  drill: boolean;
  points: ReadingPoint[];
}
