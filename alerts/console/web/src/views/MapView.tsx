import { useEffect, useRef, useState } from 'preact/hooks';
import L from 'leaflet';
import { api, errorText } from '../api';
import { t, useLang } from '../i18n';
import { useStore } from '../lib/store';
import { alerts } from '../alerts/live';
import { incidents } from '../alerts/incidents';
import { IncidentAreas } from '../map/incidents';
import { createPanes, homeBounds } from '../map/basemap';
import { DeviceClusters } from '../map/clusters';
import { tileAttribution, tileTemplate } from '../map/geography';
import { AlertMarkers, districtLayer } from '../map/layers';
import '../styles/map.css';

const PAGE = 1000;
const MAX_PAGES = 20;

interface Loaded {
  online: number;
  offline: number;
  total: number | null;
  done: boolean;
  error: string | null;
}

/**
 * The district without any tile server: Shenzhen's districts (Longgang emphasised) as the basemap, devices clustered
 * by zoom, coloured by status, open alerts by level above them. The map's element carries what is drawn, for tests:
 * `data-clusters`, `data-devices` (single devices), `data-zoom`.
 */
export function MapView() {
  const lang = useLang();
  const all = useStore(alerts);
  const held = useStore(incidents);
  const box = useRef<HTMLDivElement>(null);
  const map = useRef<L.Map | null>(null);
  const layers = useRef<{
    district: L.LayerGroup;
    devices: DeviceClusters;
    alerts: AlertMarkers;
    incidents: IncidentAreas;
  } | null>(null);
  const [loaded, setLoaded] = useState<Loaded>({ online: 0, offline: 0, total: null, done: false, error: null });
  const [alertCount, setAlertCount] = useState(0);
  const [incidentCount, setIncidentCount] = useState(0);
  const tiles = tileTemplate();

  useEffect(() => {
    const m = L.map(box.current!, { zoomControl: true, attributionControl: Boolean(tiles), minZoom: 9, maxZoom: 18, zoomSnap: 0.25 });
    m.fitBounds(homeBounds(), { padding: [20, 20] });
    createPanes(m);
    if (tiles) L.tileLayer(tiles, { maxZoom: 19, attribution: tileAttribution() }).addTo(m);
    const node = box.current!;
    const devices = new DeviceClusters(m, L.canvas({ padding: 0.2 }), (drawn) => {
      node.dataset.clusters = String(drawn.clusters);
      node.dataset.devices = String(drawn.devices);
      node.dataset.zoom = String(Math.round(m.getZoom()));
    });
    const areas = new IncidentAreas(L.layerGroup().addTo(m), L.svg({ pane: 'incidents' }));
    const alertLayer = L.layerGroup().addTo(m);
    const alertMarkers = new AlertMarkers(alertLayer, L.svg({ pane: 'alerts' }));
    layers.current = { district: L.layerGroup().addTo(m), devices, alerts: alertMarkers, incidents: areas };
    map.current = m;

    // Devices page by page (1,000 a page, at most 20 pages).
    const abort = new AbortController();
    (async () => {
      let online = 0;
      let offline = 0;
      for (let page = 0; page < MAX_PAGES; page++) {
        const res = await api.devices({ offset: page * PAGE, limit: PAGE }, abort.signal);
        const counts = devices.add(res.devices, res.health ?? {});
        online += counts.online;
        offline += counts.offline;
        const done = (page + 1) * PAGE >= res.total || res.devices.length < PAGE;
        setLoaded({ online, offline, total: res.total, done, error: null });
        if (done) break;
      }
      devices.done();
      setLoaded((l) => ({ ...l, done: true }));
    })().catch((err) => {
      if (!abort.signal.aborted) setLoaded((l) => ({ ...l, done: true, error: errorText(err) }));
    });

    return () => {
      abort.abort();
      devices.remove();
      m.remove();
      map.current = null;
      layers.current = null;
    };
  }, []);

  useEffect(() => {
    const l = layers.current;
    if (!l) return;
    l.district.clearLayers();
    districtLayer(lang === 'zh').eachLayer((layer) => l.district.addLayer(layer));
  }, [lang]);

  useEffect(() => {
    const l = layers.current;
    if (!l) return;
    l.alerts.zh = lang === 'zh';
    setAlertCount(l.alerts.sync(all.values()));
  }, [all, lang]);

  useEffect(() => {
    const l = layers.current;
    if (!l) return;
    l.incidents.zh = lang === 'zh';
    const drawn = l.incidents.sync(held.values());
    if (box.current) box.current.dataset.incidentAreas = String(drawn);
    setIncidentCount(drawn);
  }, [held, lang]);

  return (
    <div class="map-page">
      <div class="map-legend card">
        <strong>{t('mapTitle')}</strong>
        <span><i class="sw sw-online" /> {t('mapOnline')} {loaded.online}</span>
        <span><i class="sw sw-offline" /> {t('mapOffline')} {loaded.offline}</span>
        <span class="muted">
          {t('mapLoadedDevices')}: {loaded.online + loaded.offline}
          {loaded.total != null && ` / ${loaded.total}`}
          {!loaded.done && ' …'}
        </span>
        <span><i class="sw sw-alert" /> {t('mapAlert')} {alertCount}</span>
        <span><i class="sw sw-incident" /> {t('mapIncidentAreas')} {incidentCount}</span>
        <span>
          <i class="sw sw-cluster cluster-online" /> <i class="sw sw-cluster cluster-offline" /> {t('mapClusterLegend')}
        </span>
        <span class="muted">{t('mapBasemap')}</span>
        <span class="muted">{t('mapTiles')}: {tiles ? tiles : t('mapNoTiles')}</span>
        {loaded.error && <span class="error">{t('error') + loaded.error}</span>}
      </div>
      <div class="map" ref={box} data-testid="map" />
    </div>
  );
}
