// Open incidents' areas on the map (issue 21): the members' hull, or a circle around them, in the level's colour,
// in their own pane above the device clusters and below the alert markers.
import L from 'leaflet';
import { DRILL_COLOUR, LEVEL_COLOURS } from '../colours';
import { formatTime } from '../format';
import { levelName, t } from '../i18n';
import { incidentHref } from '../router';
import type { Incident } from '../types';
import { el, link } from './dom';

function style(i: Incident): L.PathOptions {
  return {
    pane: 'incidents',
    color: i.exercise ? DRILL_COLOUR : LEVEL_COLOURS[i.level],
    weight: 2,
    dashArray: i.exercise ? '6 4' : undefined,
    fillColor: LEVEL_COLOURS[i.level],
    fillOpacity: i.active ? 0.18 : 0.06,
    className: 'incident-area',
  };
}

function popup(i: Incident, zh: boolean): HTMLElement {
  return el(
    'div',
    'map-popup',
    i.exercise ? el('div', 'mp-drill', t('drillTag')) : null,
    el('div', `mp-title lv-text-${i.level}`, levelName(i.level)),
    el('div', null, zh ? i.title.zh : i.title.en),
    el('div', 'muted', `${i.summary.alerts} · ${formatTime(i.opened_at)}`),
    link(incidentHref(i.id), t('mapOpenIncident')),
  );
}

/** Kept in step with the incident store: one path per open incident that has an area. */
export class IncidentAreas {
  private shapes = new Map<string, { shape: L.Path; incident: Incident }>();
  zh = true;

  constructor(
    private readonly layer: L.LayerGroup,
    private readonly renderer: L.Renderer,
  ) {}

  /** Returns how many incident areas are drawn. */
  sync(incidents: Iterable<Incident>): number {
    const wanted = new Map<string, Incident>();
    for (const i of incidents) if (!i.closed && !i.merged_into && i.area) wanted.set(i.id, i);
    for (const [id, entry] of this.shapes) {
      const next = wanted.get(id);
      if (next === entry.incident) continue;
      this.layer.removeLayer(entry.shape);
      this.shapes.delete(id);
    }
    for (const i of wanted.values()) {
      if (this.shapes.has(i.id)) continue;
      const area = i.area!;
      const options = { ...style(i), renderer: this.renderer };
      const shape =
        area.polygon.length >= 4
          ? L.polygon(area.polygon.map(([lat, lon]) => [lat, lon] as L.LatLngTuple), options)
          : L.circle([area.lat, area.lon], { ...options, radius: area.radius_m });
      const entry = { shape, incident: i };
      shape.bindPopup(() => popup(entry.incident, this.zh)).addTo(this.layer);
      this.shapes.set(i.id, entry);
    }
    return wanted.size;
  }
}
