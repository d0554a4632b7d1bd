// The offline basemap: Shenzhen's districts from core/geo/shenzhen-districts.geojson, the file core/geo/districts.py
// reads, bundled at build time (WGS-84, GB/T 2260 codes; sources, datum and licences in core/geo/README.md).
// Longgang is drawn stronger than its neighbours; every district is named in Chinese with English beside it.
import L from 'leaflet';
import raw from '../../../../../core/geo/shenzhen-districts.geojson?raw';
import { el } from './dom';

/** Longgang's GB/T 2260 code: the district the console watches. */
export const HOME = '440307';

type Ring = [number, number][]; // [lon, lat]

export interface DistrictFeature {
  type: 'Feature';
  id: string;
  properties: { code: string; name_zh: string; name_en: string; label: [number, number] };
  geometry: { type: 'Polygon'; coordinates: Ring[] } | { type: 'MultiPolygon'; coordinates: Ring[][] };
}

interface DistrictFile {
  type: 'FeatureCollection';
  features: DistrictFeature[];
}

export const DISTRICTS: DistrictFeature[] = (JSON.parse(raw) as DistrictFile).features;

function polygons(f: DistrictFeature): Ring[][] {
  return f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates;
}

/**
 * The map's first view: Longgang's main polygon (the eleven subdistricts; not the Dapeng peninsula, which GB/T 2260
 * counts under Longgang too and the file draws as its second polygon).
 */
export function homeBounds(): L.LatLngBounds {
  const home = DISTRICTS.find((f) => f.id === HOME)!;
  const outer = polygons(home)
    .map((p) => p[0])
    .reduce((a, b) => (b.length > a.length ? b : a));
  return L.latLngBounds(outer.map(([lon, lat]) => [lat, lon]));
}

/** Panes from the bottom up (Leaflet's own: tiles 200, overlays 400, markers 600, tooltips 650, popups 700). */
export const PANES = {
  basemap: 250, // district areas and borders
  labels: 350, // district and subdistrict names: below every marker, so a name never hides an alert
  clusters: 450, // device clusters (single devices are drawn on the canvas in the overlay pane, 400)
  incidents: 480, // incident areas, above the clusters
  alerts: 500, // open alerts, above everything the devices draw
} as const;

export function createPanes(map: L.Map): void {
  for (const [name, z] of Object.entries(PANES)) map.createPane(name).style.zIndex = String(z);
}

const HOME_STYLE: L.PathOptions = { color: '#7f9ccc', weight: 2.5, fillColor: '#6d8bb3', fillOpacity: 0.07 };
const NEIGHBOUR_STYLE: L.PathOptions = { color: '#3d4c61', weight: 1, fillColor: '#1a2330', fillOpacity: 0.35 };

/** The districts' areas and borders (a path each, class `district`, Longgang's also `district-home`) and names. */
export function basemapLayer(zh: boolean): L.LayerGroup {
  const group = L.layerGroup();
  const renderer = L.svg({ pane: 'basemap' });
  // neighbours first, so Longgang's border is drawn over the borders it shares
  const ordered = [...DISTRICTS].sort((a, b) => Number(a.id === HOME) - Number(b.id === HOME));
  for (const f of ordered) {
    const home = f.id === HOME;
    const latlngs = polygons(f).map((rings) => rings.map((ring) => ring.map(([lon, lat]) => L.latLng(lat, lon))));
    L.polygon(latlngs, {
      ...(home ? HOME_STYLE : NEIGHBOUR_STYLE),
      renderer,
      interactive: false,
      className: home ? 'district district-home' : 'district',
    }).addTo(group);
    const [first, second] = zh ? [f.properties.name_zh, f.properties.name_en] : [f.properties.name_en, f.properties.name_zh];
    const name = el('div', home ? 'district-name home' : 'district-name', first, el('small', null, second));
    // Longgang's own label point is among its subdistricts' names: its name goes at its north-west corner
    const [lon, lat] = f.properties.label;
    const at = home ? homeBounds().getNorthWest() : L.latLng(lat, lon);
    L.marker(at, {
      icon: L.divIcon({ html: name, className: 'subdistrict-icon', iconSize: [200, 34], iconAnchor: home ? [0, 0] : [100, 17] }),
      interactive: false,
      keyboard: false,
      pane: 'labels',
    }).addTo(group);
  }
  return group;
}
