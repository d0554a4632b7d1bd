import { useMemo } from 'preact/hooks';
import { t, useLang } from '../i18n';
import { useStore } from '../lib/store';
import { alerts } from '../alerts/live';
import { countOpen, filters, select } from '../alerts/select';
import { AlertTable } from '../components/AlertTable';
import { Filters } from '../components/Filters';
import { Summary } from '../components/Summary';

/** The live alert board: real alerts first; drills only in their own section under the purple DRILL banner. */
export function Board() {
  useLang();
  const all = useStore(alerts);
  const f = useStore(filters);
  const { real, drill, anyDrill } = useMemo(() => select(all.values(), f), [all, f]);
  const counts = useMemo(() => countOpen(all.values()), [all]);
  return (
    <div class="board">
      <div class="board-head">
        <Summary real={counts.real} exercise={counts.exercise} />
        <Filters />
      </div>
      <section class="section real-section" data-testid="real-section">
        <h2 class="section-title">
          {t('realAlerts')} <span class="count">{real.length}</span>
        </h2>
        <AlertTable alerts={real} />
      </section>
      {anyDrill && (
        <section class="section drill-section" data-testid="drill-section">
          <h2 class="drill-banner">
            {t('drillBanner')} <span class="count">{drill.length}</span>
          </h2>
          <AlertTable alerts={drill} />
        </section>
      )}
    </div>
  );
}
