import { levelShort, t, useLang } from '../i18n';
import type { Counts } from '../alerts/select';
import { LEVELS } from '../types';

function Line({ label, counts, kind }: { label: string; counts: Counts; kind: 'real' | 'drill' }) {
  return (
    <div class={`summary-line summary-${kind}`}>
      <span class="summary-label">{label}</span>
      {LEVELS.map((l) => (
        <span key={l} class={`summary-cell lv-${l}`} data-testid={`summary-${kind}-${l}`} data-count={counts[l]}>
          <span class="n">{counts[l]}</span>
          <span class="l">{levelShort(l)}</span>
        </span>
      ))}
    </div>
  );
}

/** Open alerts per level, real and drill never added together. */
export function Summary({ real, exercise }: { real: Counts; exercise: Counts }) {
  useLang();
  const drills = LEVELS.some((l) => exercise[l] > 0);
  return (
    <section class="summary" data-testid="summary" aria-label={t('summary')}>
      <Line label={`${t('summary')} · ${t('summaryReal')}`} counts={real} kind="real" />
      {drills && <Line label={t('summaryDrillLabel')} counts={exercise} kind="drill" />}
    </section>
  );
}
