import { t, tn } from '../i18n';
import type { Alert } from '../types';

/** Active or cleared, acknowledged or not, closed; plus the flags an officer should notice. */
export function AlertState({ alert: a }: { alert: Alert }) {
  return (
    <span class="states">
      {a.closed ? (
        <span class="st st-closed">{t('closed')}</span>
      ) : (
        <span class={a.active ? 'st st-active' : 'st st-cleared'}>{a.active ? t('active') : t('cleared')}</span>
      )}
      <span class={a.acknowledged ? 'st st-ack' : 'st st-unack'}>
        {a.acknowledged ? t('acknowledged') : t('unacknowledged')}
      </span>
      {a.escalations > 0 && (
        <span class="st st-esc">{tn('escalations', a.escalations)}</span>
      )}
      {a.flapping && <span class="st">{t('flapping')}</span>}
      {a.inhibited_by && <span class="st">{t('inhibited')}</span>}
    </span>
  );
}
