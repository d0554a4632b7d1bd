// Devices clustered by zoom (supercluster): at district scale a few dozen counted circles instead of one solid mass
// of 10,000 dots; zoomed in, every device on its own. Only what is in view (and a margin) is drawn, after each move.
import L from 'leaflet';
import Supercluster from 'supercluster';
import type { ClusterProperties, PointFeature } from 'supercluster';
import { formatTime } from '../format';
import { kindName, statusName, t, tn } from '../i18n';
import { deviceHref } from '../router';
import type { Device, Health } from '../types';
import { el, link } from './dom';

export const ONLINE = '#2ecc71';
export const OFFLINE = '#8a939e';

/** Clusters up to this zoom; from the next one up every device is drawn alone (a site's devices are metres apart). */
const CLUSTER_MAX_ZOOM = 16;
/** Radius in pixels within which devices join a cluster. */
const CLUSTER_RADIUS = 80;
/** While pages arrive, the index is rebuilt at most this often. */
const REBUILD_MS = 500;

interface DeviceProps {
  device: Device;
  health: Health | undefined;
  offline: number; // 1 or 0, summed into a cluster's count of offline devices
}
interface Sums {
  offline: number;
}
type Cluster = PointFeature<ClusterProperties & Sums>;

export interface Drawn {
  clusters: number;
  devices: number;
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

/** A cluster's circle: its count, green when every device in it is online, grey when any is offline. */
function clusterIcon(count: number, offline: number): L.DivIcon {
  const size = Math.round(26 + 8 * Math.log10(count));
  const node = el('div', offline > 0 ? 'cluster cluster-offline' : 'cluster cluster-online', count >= 1000 ? `${(count / 1000).toFixed(1)}k` : String(count));
  node.dataset.testid = 'map-cluster';
  node.dataset.count = String(count);
  node.dataset.offline = String(offline);
  node.style.width = node.style.height = node.style.lineHeight = `${size}px`;
  return L.divIcon({ html: node, className: 'cluster-icon', iconSize: [size, size] });
}

export class DeviceClusters {
  private readonly points: PointFeature<DeviceProps>[] = [];
  private index = this.newIndex();
  private readonly clusterLayer = L.layerGroup();
  private readonly deviceLayer = L.layerGroup();
  /** What is drawn, by key: a device by its id, a cluster by its id in the current index. */
  private readonly drawn = new Map<string, L.Layer>();
  private pending = 0;

  constructor(
    private readonly map: L.Map,
    private readonly renderer: L.Renderer,
    private readonly onDraw: (drawn: Drawn) => void,
  ) {
    this.clusterLayer.addTo(map);
    this.deviceLayer.addTo(map);
    map.on('moveend', this.draw, this);
  }

  private newIndex(): Supercluster<DeviceProps, Sums> {
    return new Supercluster<DeviceProps, Sums>({
      radius: CLUSTER_RADIUS,
      maxZoom: CLUSTER_MAX_ZOOM,
      map: (p) => ({ offline: p.offline }),
      reduce: (sum, p) => {
        sum.offline += p.offline;
      },
    });
  }

  /** Adds a page of devices; returns how many of them are online and offline. */
  add(devices: Device[], health: Record<string, Health>): { online: number; offline: number } {
    let online = 0;
    for (const d of devices) {
      const h = health[d.id];
      const offline = h?.status === 'online' ? 0 : 1;
      online += 1 - offline;
      this.points.push({ type: 'Feature', geometry: { type: 'Point', coordinates: [d.lon, d.lat] }, properties: { device: d, health: h, offline } });
    }
    // The first page is drawn at once; later pages at most every REBUILD_MS (each rebuild indexes every device so
    // far: once per page would cost 10,000 devices about 55,000 insertions), and at once when loading is done.
    if (!this.pending) this.pending = window.setTimeout(() => this.rebuild(), this.points.length === devices.length ? 0 : REBUILD_MS);
    return { online, offline: devices.length - online };
  }

  /** Every page is in: index and draw now. */
  done(): void {
    this.rebuild();
  }

  private rebuild(): void {
    window.clearTimeout(this.pending);
    this.pending = 0;
    this.index = this.newIndex().load(this.points);
    this.clear(true); // cluster ids belong to the index they came from
    this.draw();
  }

  remove(): void {
    window.clearTimeout(this.pending);
    this.map.off('moveend', this.draw, this);
    this.clusterLayer.remove();
    this.deviceLayer.remove();
  }

  private clear(clustersOnly: boolean): void {
    for (const [key, layer] of this.drawn) {
      if (clustersOnly && !key.startsWith('c:')) continue;
      layer.remove();
      this.drawn.delete(key);
    }
  }

  /** Draws what is in view at this zoom, keeping what is already drawn (an open popup stays open). */
  private draw(): void {
    const bounds = this.map.getBounds().pad(0.25);
    const zoom = Math.round(this.map.getZoom());
    const features = this.index.getClusters([bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()], zoom);
    const wanted = new Map<string, PointFeature<DeviceProps> | Cluster>();
    for (const f of features) wanted.set('cluster' in f.properties ? `c:${f.properties.cluster_id}` : `d:${f.properties.device.id}`, f);
    for (const [key, layer] of this.drawn) {
      if (!wanted.has(key)) {
        layer.remove();
        this.drawn.delete(key);
      }
    }
    let clusters = 0;
    for (const [key, f] of wanted) {
      if (key.startsWith('c:')) clusters += 1;
      if (this.drawn.has(key)) continue;
      const [lon, lat] = f.geometry.coordinates;
      const layer = 'cluster' in f.properties ? this.clusterMarker(f as Cluster, lat, lon) : this.deviceMarker(f.properties as DeviceProps, lat, lon);
      this.drawn.set(key, layer);
    }
    this.onDraw({ clusters, devices: wanted.size - clusters });
  }

  private clusterMarker(f: Cluster, lat: number, lon: number): L.Layer {
    const { cluster_id: id, point_count: count, offline } = f.properties;
    const marker = L.marker([lat, lon], { icon: clusterIcon(count, offline), pane: 'clusters', riseOnHover: true });
    const text = offline > 0 ? `${tn('mapClusterDevices', count)} · ${tn('mapClusterOffline', offline)}` : tn('mapClusterDevices', count);
    marker.bindTooltip(() => el('span', null, `${text} · ${t('mapClusterZoom')}`), { direction: 'top' });
    marker.on('click', () => this.map.setView([lat, lon], Math.min(this.index.getClusterExpansionZoom(id), this.map.getMaxZoom())));
    return marker.addTo(this.clusterLayer);
  }

  private deviceMarker(p: DeviceProps, lat: number, lon: number): L.Layer {
    const { device: d, health: h } = p;
    return L.circleMarker([lat, lon], {
      renderer: this.renderer,
      radius: 4.5,
      weight: 1,
      color: '#0b0f14',
      fillColor: p.offline ? OFFLINE : ONLINE,
      fillOpacity: 0.9,
    })
      .bindTooltip(() => el('span', null, `${d.id} · ${d.site_name}`), { direction: 'top' })
      .bindPopup(() => devicePopup(d, h))
      .addTo(this.deviceLayer);
  }
}
