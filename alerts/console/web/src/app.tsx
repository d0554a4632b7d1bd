import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from './api';
import { session, setOfficer } from './auth';
import { t, useLang } from './i18n';
import { useStore } from './lib/store';
import { start } from './alerts/live';
import { Header } from './components/Header';
import { route, type Route } from './router';
import { Board } from './views/Board';
import { AlertDetailView } from './views/AlertDetail';
import { DeviceDetailView } from './views/DeviceDetail';
import { DevicesView } from './views/Devices';
import { IncidentDetailView } from './views/IncidentDetail';
import { IncidentReportView } from './views/IncidentReport';
import { Login } from './views/Login';
import { MapView } from './views/MapView';

/** Where to go after signing in: the page the officer first asked for. */
let afterLogin = '#/';

function Page({ r }: { r: Route }) {
  switch (r.name) {
    case 'board':
      return <Board />;
    case 'alert':
      return <AlertDetailView id={r.id} />;
    case 'map':
      return <MapView />;
    case 'devices':
      return <DevicesView />;
    case 'device':
      return <DeviceDetailView id={r.id} />;
    case 'incident':
      return <IncidentDetailView id={r.id} />;
    case 'incidentReport':
      return <IncidentReportView id={r.id} />;
    default:
      return <p class="empty">{t('notFound')}</p>;
  }
}

export function App() {
  useLang();
  const s = useStore(session);
  const r = useStore(route);
  const [meError, setMeError] = useState<string | null>(null);
  const signedIn = Boolean(s.token && s.officer);

  // A token from an earlier page load (sessionStorage): find whose it is (a 401 signs out).
  useEffect(() => {
    if (!s.token || s.officer) return;
    setMeError(null);
    api.me().then(setOfficer, (err) => setMeError(errorText(err)));
  }, [s.token, s.officer]);

  useEffect(() => {
    if (signedIn) start();
  }, [signedIn, s.token]);

  useEffect(() => {
    if (!s.token && r.name !== 'login') {
      afterLogin = location.hash && !location.hash.startsWith('#/login') ? location.hash : '#/';
      location.hash = '#/login';
    } else if (signedIn && r.name === 'login') {
      location.hash = afterLogin;
      afterLogin = '#/';
    }
  }, [s.token, signedIn, r.name]);

  let body;
  if (!s.token || r.name === 'login') body = <Login expired={s.expired} />;
  else if (!s.officer) body = <p class="empty">{meError ? t('error') + meError : t('loading')}</p>;
  else body = <Page r={r} />;

  return (
    <div class="app">
      <Header route={r} />
      <main class="main">{body}</main>
    </div>
  );
}
