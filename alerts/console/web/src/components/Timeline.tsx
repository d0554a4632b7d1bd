import { departmentList, eventName, t, useLang } from '../i18n';
import { formatTime } from '../format';
import type { HistoryEntry, Level } from '../types';
import { LEVELS } from '../types';
import { LevelBadge } from './LevelBadge';

/** The alert's events, oldest first: raised, escalated, acknowledged (who, note), cleared, closed ... */
export function Timeline({ history }: { history: HistoryEntry[] }) {
  useLang();
  const entries = [...history].sort((a, b) => a.seq - b.seq);
  if (entries.length === 0) return <p class="empty">{t('none')}</p>;
  return (
    <ol class="timeline" data-testid="timeline">
      {entries.map((h) => (
        <li key={h.seq} class={`tl-item ev-${h.event}`} data-testid="timeline-entry" data-event={h.event}>
          <span class="tl-time mono">{formatTime(h.at)}</span>
          <span class="tl-event">{eventName(h.event)}</span>
          {LEVELS.includes(h.level as Level) ? <LevelBadge level={h.level as Level} /> : <span>{h.level}</span>}
          {h.by && (
            <span class="tl-by">
              {t('by')}: <strong>{h.by}</strong>
            </span>
          )}
          {h.note && <span class="tl-note">“{h.note}”</span>}
          <span class="tl-dept muted">{departmentList(h.departments)}</span>
        </li>
      ))}
    </ol>
  );
}
