import { signOut, session } from '../auth';
import { departmentList, setLang, t, useLang } from '../i18n';
import { useStore } from '../lib/store';
import { liveState } from '../alerts/live';
import { muted, setMuted, soundBlocked, unlockAudio } from '../alerts/alarm';
import type { Route } from '../router';

function NavLink({ href, active, testid, label }: { href: string; active: boolean; testid: string; label: string }) {
  return (
    <a href={href} class={active ? 'nav-link active' : 'nav-link'} data-testid={testid} aria-current={active ? 'page' : undefined}>
      {label}
    </a>
  );
}

export function Header({ route }: { route: Route }) {
  const lang = useLang();
  const s = useStore(session);
  const live = useStore(liveState);
  const isMuted = useStore(muted);
  const blocked = useStore(soundBlocked);
  const officer = s.token ? s.officer : null;
  const r = route.name;

  return (
    <header class="topbar">
      <div class="brand">{t('appTitle')}</div>
      {officer && (
        <nav class="nav">
          <NavLink href="#/" active={r === 'board' || r === 'alert' || r === 'incident' || r === 'incidentReport'} testid="nav-board" label={t('navBoard')} />
          <NavLink href="#/map" active={r === 'map'} testid="nav-map" label={t('navMap')} />
          <NavLink href="#/devices" active={r === 'devices' || r === 'device'} testid="nav-devices" label={t('navDevices')} />
        </nav>
      )}
      <div class="spacer" />
      {officer && (
        <span class={`live live-${live}`} data-testid="live-state" data-state={live}>
          <span class="dot" />
          {live === 'live' ? t('liveOn') : live === 'down' ? t('liveOff') : t('liveConnecting')}
        </span>
      )}
      {officer && blocked && (
        <button type="button" class="btn btn-warn" data-testid="sound-blocked" onClick={unlockAudio}>
          {t('soundBlocked')}
        </button>
      )}
      {officer && (
        <button
          type="button"
          class={isMuted ? 'btn btn-muted' : 'btn'}
          data-testid="mute-toggle"
          aria-pressed={isMuted}
          onClick={() => setMuted(!isMuted)}
        >
          {isMuted ? t('soundOff') : t('soundOn')}
        </button>
      )}
      <button type="button" class="btn" data-testid="lang-toggle" onClick={() => setLang(lang === 'zh' ? 'en' : 'zh')}>
        {t('langToggle')}
      </button>
      {officer && (
        <span class="officer" data-testid="officer" title={`${officer.name} · ${departmentList(officer.departments)}`}>
          <strong>{officer.name}</strong>
          {officer.admin && <span class="tag">{t('admin')}</span>}
          <span class="muted"> · {departmentList(officer.departments)}</span>
        </span>
      )}
      {officer && (
        <button type="button" class="btn" data-testid="logout" onClick={() => signOut(false)}>
          {t('logout')}
        </button>
      )}
    </header>
  );
}
