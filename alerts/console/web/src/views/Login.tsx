import { useState } from 'preact/hooks';
import { ApiError, api, errorText } from '../api';
import { signIn } from '../auth';
import { unlockAudio } from '../alerts/alarm';
import { t, useLang } from '../i18n';

export function Login({ expired }: { expired: boolean }) {
  useLang();
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    unlockAudio(); // the click is the user gesture browsers require before any alarm sound
    const value = token.trim();
    if (!value) {
      setError(t('loginEmpty'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const officer = await api.me(value);
      signIn(value, officer);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) setError(t('loginBad'));
      else setError(t('loginNetwork') + errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="login card" onSubmit={submit}>
      <h1>{t('loginTitle')}</h1>
      {expired && !error && <p class="notice">{t('sessionExpired')}</p>}
      <label>
        {t('loginToken')}
        <input
          type="password"
          autoComplete="off"
          autoFocus
          data-testid="login-token"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        />
      </label>
      {error && (
        <p class="error" role="alert" data-testid="login-error">
          {error}
        </p>
      )}
      <button type="submit" class="btn btn-primary" data-testid="login-submit" disabled={busy}>
        {busy ? t('loginChecking') : t('loginSubmit')}
      </button>
      <p class="hint">{t('loginHint')}</p>
    </form>
  );
}
