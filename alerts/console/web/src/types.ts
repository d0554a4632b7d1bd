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
  /** The incident grouping it with the other alerts of its hazard event (absent before incidents existed). */
  incident_id?: string | null;
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

// incidents (issue 21): core/contracts/incident.py (Incident), alerts/incident_api.py (IncidentDetail),
// alerts/incidents.py (HistoryEntry, Action, DeliveryEntry), smartcity/incident_report.py (Report).
export type IncidentEvent =
  | 'opened'
  | 'escalated'
  | 'deescalated'
  | 'updated'
  | 'reminder'
  | 'acknowledged'
  | 'cleared'
  | 'reactivated'
  | 'closed'
  | 'merged';

export interface IncidentMember {
  alert_id: string;
  key: string;
  level: Level;
  hazard: Hazard;
  rule: string;
  device_id: string | null;
  site_id: string | null;
  site_name: string | null;
  lat: number | null;
  lon: number | null;
  departments: Department[];
  muted_departments?: Department[];
  active: boolean;
  acknowledged: boolean;
  closed: boolean;
  opened_at: number;
  ended_at: number | null;
}

export interface IncidentSummary {
  alerts: number;
  active: number;
  sites: number;
  devices: number;
  levels: Partial<Record<Level, number>>;
}

export interface Area {
  lat: number;
  lon: number;
  radius_m: number;
  polygon: [number, number][];
}

export interface Incident {
  v: number;
  id: string;
  seq: number;
  event: IncidentEvent;
  family: string;
  hazard: Hazard;
  level: Level;
  active: boolean;
  acknowledged: boolean;
  closed: boolean;
  exercise: boolean;
  departments: Department[];
  muted_departments: Department[];
  escalations: number;
  summary: IncidentSummary;
  members: IncidentMember[];
  area: Area | null;
  merged_into: string | null;
  opened_at: number;
  updated_at: number;
  title: Text;
}

export interface IncidentHistoryEntry {
  seq: number;
  event: IncidentEvent;
  level: Level;
  at: number;
  active: boolean;
  acknowledged: boolean;
  closed: boolean;
  departments: Department[];
  alerts: number;
}

export interface IncidentAction {
  kind: string;
  by: string;
  departments: Department[];
  at: number;
  note: string;
  alert_ids: string[];
}

export interface DeliveryEntry {
  seq: number;
  event: IncidentEvent;
  channel: string;
  department: string;
  target: string;
  at: number;
  delivered: boolean;
  reason: string | null;
}

export interface IncidentDetail {
  incident: Incident;
  alerts: AlertDetail[];
  history: IncidentHistoryEntry[];
  actions: IncidentAction[];
  deliveries: DeliveryEntry[];
}

export interface ReportEvent {
  at: number;
  alert_id: string;
  device_id: string | null;
  site_name: string | null;
  rule: string;
  event: string;
  level: string;
  by: string | null;
  note: string | null;
}

export interface DepartmentResponse {
  department: string;
  first_told_at: number | null;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  seconds_to_acknowledge: number | null;
}

/** Points as the readings API gives them ({ts, value} or {ts, mean, min, max}); `time` accepted too. */
export interface ReportSeries {
  device_id: string;
  metric: string;
  unit: string;
  every_s: number | null;
  points: (ReadingPoint & { time?: number })[];
  error: string | null;
}

export interface Report {
  detail: IncidentDetail;
  generated_at: number;
  from_ms: number;
  to_ms: number;
  events: ReportEvent[];
  departments: DepartmentResponse[];
  seconds_to_first_message: number | null;
  seconds_to_close: number | null;
  readings: ReportSeries[];
}
