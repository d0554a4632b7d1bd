// Hash routes: #/ (board), #/login, #/alerts/<id>, #/incidents/<id>, #/incidents/<id>/report, #/map, #/devices,
// #/devices/<id>.
import { createStore } from './lib/store';

export type Route =
  | { name: 'board' }
  | { name: 'login' }
  | { name: 'alert'; id: string }
  | { name: 'map' }
  | { name: 'devices' }
  | { name: 'device'; id: string }
  | { name: 'incident'; id: string }
  | { name: 'incidentReport'; id: string }
  | { name: 'notFound' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').split('?')[0] || '/';
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts.length === 0) return { name: 'board' };
  if (parts[0] === 'login' && parts.length === 1) return { name: 'login' };
  if (parts[0] === 'map' && parts.length === 1) return { name: 'map' };
  if (parts[0] === 'alerts' && parts.length === 2) return { name: 'alert', id: parts[1] };
  if (parts[0] === 'devices' && parts.length === 1) return { name: 'devices' };
  if (parts[0] === 'devices' && parts.length === 2) return { name: 'device', id: parts[1] };
  if (parts[0] === 'incidents' && parts.length === 2) return { name: 'incident', id: parts[1] };
  if (parts[0] === 'incidents' && parts.length === 3 && parts[2] === 'report') return { name: 'incidentReport', id: parts[1] };
  return { name: 'notFound' };
}

export const route = createStore<Route>(parseRoute(location.hash));
window.addEventListener('hashchange', () => route.set(parseRoute(location.hash)));

export const alertHref = (id: string): string => `#/alerts/${encodeURIComponent(id)}`;
export const deviceHref = (id: string): string => `#/devices/${encodeURIComponent(id)}`;
export const incidentHref = (id: string): string => `#/incidents/${encodeURIComponent(id)}`;
export const reportHref = (id: string): string => `#/incidents/${encodeURIComponent(id)}/report`;

export function go(hash: string): void {
  location.hash = hash;
}
