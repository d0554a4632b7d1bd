// What the map draws above its basemap: the subdistricts' names, and open alerts by level. Devices: clusters.ts.
import L from 'leaflet';
import { DRILL_COLOUR, LEVEL_COLOURS } from '../colours';
import { formatTime, valueThreshold } from '../format';
import { levelName, t } from '../i18n';
import { alertHref } from '../router';
import type { Alert } from '../types';
import { basemapLayer } from './basemap';
import { SUBDISTRICTS } from './geography';
import { el, link } from './dom';

/** The districts (basemap.ts) and Longgang's subdistricts' names, in the labels pane, below every marker. */
export function districtLayer(zh: boolean): L.LayerGroup {
  const group = basemapLayer(zh);
  for (const p of SUBDISTRICTS) {
    const label = el('div', 'subdistrict-label', zh ? p.zh : p.en, el('small', null, zh ? p.en : p.zh));
    L.marker([p.lat, p.lon], {
      icon: L.divIcon({ html: label, className: 'subdistrict-icon', iconSize: [90, 30], iconAnchor: [45, 15] }),
      interactive: false,
      keyboard: false,
      pane: 'labels',
    }).addTo(group);
  }
  return group;
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

  /** `renderer`: an SVG renderer in the alerts pane (the flashing of an unacknowledged red is a CSS class). */
  constructor(
    private readonly layer: L.LayerGroup,
    private readonly renderer: L.Renderer,
  ) {}

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
      const item = { marker: L.circleMarker([a.lat!, a.lon!], { ...style, renderer: this.renderer }), alert: a, flashing };
      item.marker
        .bindTooltip(() => el('span', null, `${levelName(item.alert.level)} · ${item.alert.site_name ?? item.alert.device_id ?? ''}`), { direction: 'top' })
        .bindPopup(() => alertPopup(item.alert, this.zh))
        .addTo(this.layer);
      this.markers.set(a.id, item);
    }
    return wanted.size;
  }
}
