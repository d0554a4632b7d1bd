import { useState } from 'preact/hooks';
import { api, errorText } from '../api';
import { applyLocal } from '../alerts/live';
import { t, useLang } from '../i18n';
import type { Alert } from '../types';

/** Acknowledge (with a note), close, and the CAP 1.2 document as a download. */
export function AlertActions({ alert: a, onDone }: { alert: Alert; onDone: () => void }) {
  useLang();
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function run(action: 'ack' | 'close') {
    setBusy(true);
    setError(null);
    try {
      const updated = await (action === 'ack' ? api.ack(a.id, note.trim()) : api.close(a.id, note.trim()));
      applyLocal(updated);
      setNote('');
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  async function downloadCap() {
    setError(null);
    try {
      const blob = await (await api.cap(a.id)).blob();
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = `${a.id}.cap.xml`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(errorText(err));
    }
  }

  return (
    <div class="actions card">
      {!a.closed && (
        <form
          class="ack-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (!a.acknowledged) void run('ack');
          }}
        >
          <h3>{a.acknowledged ? t('ackNote') : t('ackTitle')}</h3>
          <textarea
            data-testid="ack-note"
            rows={2}
            maxLength={2000}
            placeholder={t('ackPlaceholder')}
            value={note}
            onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)}
          />
        </form>
      )}
      <div class="action-row">
        {!a.acknowledged && !a.closed && (
          <button type="button" class="btn btn-primary" data-testid="ack-submit" disabled={busy} onClick={() => void run('ack')}>
            {t('ackSubmit')}
          </button>
        )}
        {!a.closed && (
          <button type="button" class="btn btn-danger" data-testid="close-submit" disabled={busy} onClick={() => void run('close')}>
            {t('closeSubmit')}
          </button>
        )}
        <a
          href={`/api/alerts/${encodeURIComponent(a.id)}/cap`}
          class="btn"
          data-testid="cap-download"
          download={`${a.id}.cap.xml`}
          onClick={(e) => {
            e.preventDefault(); // the API needs the bearer header: fetch it, then save a Blob
            void downloadCap();
          }}
        >
          ⬇ {t('capDownload')}
        </a>
      </div>
      {error && (
        <p class="error" role="alert" data-testid="action-error">
          {error}
        </p>
      )}
    </div>
  );
}
