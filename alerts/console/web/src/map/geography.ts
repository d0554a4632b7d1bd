// Longgang's subdistrict centres, and the optional tile layer. The district boundaries themselves: basemap.ts.

export interface Place {
  zh: string;
  en: string;
  lat: number;
  lon: number;
}

/** Subdistrict (街道) centres. Source: simulators/geography.py SUBDISTRICTS (copied; keep the two in step). */
export const SUBDISTRICTS: Place[] = [
  { zh: '平湖', en: 'Pinghu', lat: 22.69, lon: 114.125 },
  { zh: '坂田', en: 'Bantian', lat: 22.63, lon: 114.07 },
  { zh: '吉华', en: 'Jihua', lat: 22.655, lon: 114.105 },
  { zh: '布吉', en: 'Buji', lat: 22.605, lon: 114.12 },
  { zh: '南湾', en: 'Nanwan', lat: 22.61, lon: 114.16 },
  { zh: '横岗', en: 'Henggang', lat: 22.65, lon: 114.21 },
  { zh: '园山', en: 'Yuanshan', lat: 22.665, lon: 114.25 },
  { zh: '龙城', en: 'Longcheng', lat: 22.72, lon: 114.25 },
  { zh: '龙岗', en: 'Longgang', lat: 22.73, lon: 114.285 },
  { zh: '宝龙', en: 'Baolong', lat: 22.7, lon: 114.32 },
  { zh: '坪地', en: 'Pingdi', lat: 22.775, lon: 114.31 },
];

/**
 * A tile layer only when asked for: `?tiles=<url template>` in the page address (before the #), or
 * localStorage `smartcity.tiles` (e.g. `localStorage.setItem('smartcity.tiles', 'http://tiles.local/{z}/{x}/{y}.png')`).
 * By default the console loads nothing from outside the backend.
 */
export function tileTemplate(): string | null {
  const fromQuery = new URLSearchParams(location.search).get('tiles');
  if (fromQuery) return fromQuery;
  try {
    return localStorage.getItem('smartcity.tiles') || null;
  } catch {
    return null;
  }
}

/** The tile layer's attribution: `?attribution=` or localStorage `smartcity.tiles.attribution` (plain text). */
export function tileAttribution(): string {
  const fromQuery = new URLSearchParams(location.search).get('attribution');
  let text = fromQuery ?? '';
  if (!fromQuery) {
    try {
      text = localStorage.getItem('smartcity.tiles.attribution') ?? '';
    } catch {
      text = '';
    }
  }
  // Leaflet renders attributions as HTML: escape, so this stays plain text.
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
