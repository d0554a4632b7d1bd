// What the map draws: the district outline and subdistrict labels, devices by status, open alerts by level.
import L from 'leaflet';
import { DRILL_COLOUR, LEVEL_COLOURS } from '../colours';
import { formatTime, valueThreshold } from '../format';
import { kindName, levelName, statusName, t } from '../i18n';
import { alertHref, deviceHref } from '../router';
import type { Alert, Device, Health } from '../types';
import { LONGGANG_BOUNDS, SUBDISTRICTS } from './geography';
import { el, link } from './dom';

const ONLINE = '#2ecc71';
const OFFLINE = '#8a939e';

/** Labels sit below the markers (Leaflet's overlay pane is 400, markers 600) so they never hide an alert. */
export const LABEL_PANE = 'labels';

export function districtLayer(zh: boolean): L.LayerGroup {
  const group = L.layerGroup();
  L.rectangle(LONGGANG_BOUNDS, { color: '#6d8bb3', weight: 1.5, dashArray: '6 4', fill: true, fillOpacity: 0.04, interactive: false }).addTo(group);
  const [[, west], [north]] = LONGGANG_BOUNDS;
  L.marker([north, west], {
    icon: L.divIcon({ html: el('div', 'district-label', t('mapApprox')), className: 'subdistrict-icon', iconSize: [360, 22], iconAnchor: [0, 24] }),
    interactive: false,
    keyboard: false,
    pane: LABEL_PANE,
  }).addTo(group);
  for (const p of SUBDISTRICTS) {
    const label = el('div', 'subdistrict-label', zh ? p.zh : p.en, el('small', null, zh ? p.en : p.zh));
    L.marker([p.lat, p.lon], {
      icon: L.divIcon({ html: label, className: 'subdistrict-icon', iconSize: [90, 30], iconAnchor: [45, 15] }),
      interactive: false,
      keyboard: false,
      pane: LABEL_PANE,
    }).addTo(group);
  }
  return group;
}

function devicePopup(d: Device, h: Health | undefined): HTMLElement {
  return el(
    'div',
    'map-popup',
    el('div', 'mp-title', link(deviceHref(d.id), d.id)),
    el('div', null, d.site_name),
    el('div', 'muted', `${kindName(d.kind)} · ${statusName(h?.status ?? 'offline')}`),
    el('div', 'muted', `${t('colLastSeen')}: ${h?.last_seen ? formatTime(h.last_seen) : t('never')}`),
  );
}

export function addDevices(layer: L.LayerGroup, renderer: L.Renderer, devices: Device[], health: Record<string, Health>): {
  online: number;
  offline: number;
} {
  let online = 0;
  let offline = 0;
  for (const d of devices) {
    const h = health[d.id];
    const isOnline = h?.status === 'online';
    if (isOnline) online += 1;
    else offline += 1;
    L.circleMarker([d.lat, d.lon], {
      renderer,
      radius: 3.5,
      weight: 1,
      color: '#0b0f14',
      fillColor: isOnline ? ONLINE : OFFLINE,
      fillOpacity: 0.9,
    })
      .bindTooltip(() => el('span', null, `${d.id} · ${d.site_name}`), { direction: 'top' })
      .bindPopup(() => devicePopup(d, h))
      .addTo(layer);
  }
  return { online, offline };
}

function alertPopup(a: Alert, zh: boolean): HTMLElement {
  return el(
    'div',
    'map-popup',
    a.exercise ? el('div', 'mp-drill', t('drillTag')) : null,
    el('div', `mp-title lv-text-${a.level}`, levelName(a.level)),
    el('div', null, zh ? a.title.zh : a.title.en),
    el('div', null, a.site_name ?? a.site_id ?? ''),
    el('div', 'mono', `${a.device_id ?? ''} ${valueThreshold(a)}`),
    el('div', 'muted', formatTime(a.opened_at)),
    link(alertHref(a.id), t('openDetail')),
  );
}

const RANK = { blue: 0, yellow: 1, orange: 2, red: 3 } as const;

function alertStyle(a: Alert): L.CircleMarkerOptions {
  const unacked = a.level === 'red' && a.active && !a.acknowledged;
  return {
    radius: a.level === 'red' ? 11 : 9,
    weight: a.exercise ? 3 : 2,
    color: a.exercise ? DRILL_COLOUR : '#ffffff',
    dashArray: a.exercise ? '4 3' : undefined,
    fillColor: LEVEL_COLOURS[a.level],
    fillOpacity: a.active ? 0.85 : 0.4,
    className: unacked ? 'alert-marker flash-marker' : 'alert-marker',
  };
}

/**
 * Open alerts at their place, larger than devices, in their level's colour; drills with a dashed purple ring.
 * Kept in step with the live store marker by marker, so an open popup stays open while other alerts change.
 */
export class AlertMarkers {
  private markers = new Map<string, { marker: L.CircleMarker; alert: Alert; flashing: boolean }>();
  zh = true;

  constructor(private readonly layer: L.LayerGroup) {}

  /** Returns how many alerts are on the map. */
  sync(alerts: Iterable<Alert>): number {
    const wanted = new Map<string, Alert>();
    for (const a of alerts) if (!a.closed && a.lat != null && a.lon != null) wanted.set(a.id, a);
    for (const [id, entry] of this.markers) {
      if (!wanted.has(id)) {
        this.layer.removeLayer(entry.marker);
        this.markers.delete(id);
      }
    }
    // lowest level first, so red is drawn on top of the rest
    for (const a of [...wanted.values()].sort((x, y) => RANK[x.level] - RANK[y.level])) {
      const entry = this.markers.get(a.id);
      const style = alertStyle(a);
      const flashing = style.className!.includes('flash-marker');
      if (entry && entry.alert === a) continue;
      if (entry && entry.flashing === flashing) {
        entry.alert = a;
        entry.marker.setLatLng([a.lat!, a.lon!]).setStyle(style).setRadius(style.radius!);
        if (RANK[a.level] >= 2) entry.marker.bringToFront();
        continue;
      }
      if (entry) this.layer.removeLayer(entry.marker); // className cannot be restyled: a new marker
      const item = { marker: L.circleMarker([a.lat!, a.lon!], style), alert: a, flashing };
      item.marker
        .bindTooltip(() => el('span', null, `${levelName(item.alert.level)} · ${item.alert.site_name ?? item.alert.device_id ?? ''}`), { direction: 'top' })
        .bindPopup(() => alertPopup(item.alert, this.zh))
        .addTo(this.layer);
      this.markers.set(a.id, item);
    }
    return wanted.size;
  }
}
