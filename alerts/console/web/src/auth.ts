// The signed-in officer. The token lives in sessionStorage only (gone when the tab closes); any 401 from the API
// signs the officer out and sends them back to #/login.
import { createStore } from './lib/store';
import type { Officer } from './types';

const TOKEN_KEY = 'smartcity.token';

export interface Session {
  token: string | null;
  officer: Officer | null;
  /** why the officer was sent back to the login page, if it was not their own choice */
  expired: boolean;
}

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export const session = createStore<Session>({ token: storedToken(), officer: null, expired: false });

export function signIn(token: string, officer: Officer): void {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* storage refused: the session lasts for this page */
  }
  session.set({ token, officer, expired: false });
}

export function signOut(expired = false): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* nothing stored */
  }
  session.set({ token: null, officer: null, expired });
  if (!location.hash.startsWith('#/login')) location.hash = '#/login';
}

export function setOfficer(officer: Officer): void {
  session.update((s) => ({ ...s, officer }));
}
