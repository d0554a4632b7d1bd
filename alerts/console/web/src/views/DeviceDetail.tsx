import { Fragment } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, errorText } from '../api';
import { departmentList, kindName, levelShort, statusName, t, useLang } from '../i18n';
import { formatAgo, formatCoords, formatTime, withUnit } from '../format';
import { useStore } from '../lib/store';
import { alerts } from '../alerts/live';
import { byLevelThenNewest } from '../alerts/select';
import type { Device, Health, Level } from '../types';
import { AlertTable } from '../components/AlertTable';
import { DeviceHistory } from '../components/DeviceHistory';

/** Each kind's main metric, first in the selector when the device has not reported yet. */
const MAIN_METRIC: Record<string, string> = { gas: 'ch4_lel', water: 'level_m', fire: 'temp_c', structural: 'tilt_deg' };

export function DeviceDetailView({ id }: { id: string }) {
  useLang();
  const [device, setDevice] = useState<Device | null>(null);
  const [health, setHealth] = useState<Health | null>(null);
  const [error, setError] = useState<string | null>(null);
  const all = useStore(alerts);

  useEffect(() => {
    setDevice(null);
    setHealth(null);
    setError(null);
    api.device(id).then(setDevice, (err) => setError(errorText(err)));
    const loadHealth = () => api.health(id).then(setHealth, () => undefined);
    loadHealth();
    const timer = window.setInterval(loadHealth, 15_000);
    return () => window.clearInterval(timer);
  }, [id]);

  const metrics = useMemo(() => {
    if (!device) return [];
    const main = MAIN_METRIC[device.kind];
    const names = new Set([main, ...Object.keys(health?.last_values ?? {}), ...Object.keys(device.thresholds)]);
    return [...names].filter(Boolean);
  }, [device, health]);

  const open = useMemo(() => [...all.values()].filter((a) => a.device_id === id && !a.closed).sort(byLevelThenNewest), [all, id]);
  const openReal = open.filter((a) => !a.exercise);
  const openDrill = open.filter((a) => a.exercise);

  if (error) return <p class="error">{t('error') + error}</p>;
  if (!device) return <p class="empty">{t('loading')}</p>;
  const status = health?.status ?? 'offline';
  return (
    <div class="device-detail" data-testid="device-detail" data-device-id={device.id}>
      <div class="detail-head">
        <a href="#/devices" class="btn">← {t('back')}</a>
        <h1 class="mono">{device.id}</h1>
        <span class={`st st-${status}`}>{statusName(status)}</span>
        <span class="muted">{kindName(device.kind)} · {device.site_name}</span>
      </div>
      <div class="detail-grid">
        <section class="card">
          <h2>{t('deviceTitle')}</h2>
          <dl class="facts">
            <dt>{t('fieldSite')}</dt>
            <dd>{device.site_name} <span class="muted mono">({device.site_id})</span></dd>
            <dt>{t('fieldCoords')}</dt>
            <dd class="mono">{formatCoords(device.lat, device.lon)}</dd>
            <dt>{t('fieldDepartments')}</dt>
            <dd>{departmentList(device.departments)}</dd>
            <dt>{t('interval')}</dt>
            <dd class="mono">{device.interval_s} s</dd>
            <dt>{t('thresholds')}</dt>
            <dd class="mono small">
              {Object.keys(device.thresholds).length === 0
                ? t('none')
                : Object.entries(device.thresholds).map(([m, levels]) => (
                    <div key={m}>
                      {m}: {(Object.entries(levels) as [Level, number][]).map(([l, v]) => `${levelShort(l)} ${v}`).join(', ')}
                    </div>
                  ))}
            </dd>
            {Object.entries(device.meta).map(([k, v]) => (
              <Fragment key={k}>
                <dt>{k}</dt>
                <dd>{v}</dd>
              </Fragment>
            ))}
          </dl>
        </section>
        <section class="card" data-testid="device-health">
          <h2>{t('health')}</h2>
          {health ? (
            <dl class="facts">
              <dt>{t('status')}</dt>
              <dd>{statusName(health.status)}</dd>
              <dt>{t('reason')}</dt>
              <dd>{health.reason}</dd>
              <dt>{t('colLastSeen')}</dt>
              <dd class="mono">{health.last_seen ? `${formatTime(health.last_seen)} (${formatAgo(health.last_seen)})` : t('never')}</dd>
              <dt>{t('colBattery')}</dt>
              <dd class="mono">{withUnit(health.battery_pct, 'battery_pct')}</dd>
              <dt>{t('colRssi')}</dt>
              <dd class="mono">{withUnit(health.rssi_dbm, 'rssi_dbm')}</dd>
              <dt>{t('lastValues')}</dt>
              <dd class="mono small">
                {Object.entries(health.last_values).map(([m, v]) => (
                  <div key={m}>
                    {m}: {withUnit(v, m)}
                  </div>
                ))}
              </dd>
            </dl>
          ) : (
            <p class="empty">{t('loading')}</p>
          )}
        </section>
      </div>
      <section class="card">
        <h2>{t('history')}</h2>
        <DeviceHistory device={device} metrics={metrics} />
      </section>
      <section class="card">
        <h2>{t('openAlerts')}</h2>
        <AlertTable alerts={openReal} />
      </section>
      {openDrill.length > 0 && (
        <section class="section drill-section">
          <h2 class="drill-banner">{t('drillBanner')}</h2>
          <AlertTable alerts={openDrill} />
        </section>
      )}
    </div>
  );
}
