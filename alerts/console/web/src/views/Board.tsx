import { useMemo } from 'preact/hooks';
import { t, useLang } from '../i18n';
import { useStore } from '../lib/store';
import { alerts } from '../alerts/live';
import { incidents } from '../alerts/incidents';
import { countOpen, filters, selectEntries } from '../alerts/select';
import { Filters } from '../components/Filters';
import { IncidentTable } from '../components/IncidentTable';
import { Summary } from '../components/Summary';

/** The live board: incidents (their member alerts folded under them) and the alerts of no incident; real ones first,
 * drills only in their own section under the purple DRILL banner. The filters apply to an incident's own fields. */
export function Board() {
  useLang();
  const all = useStore(alerts);
  const held = useStore(incidents);
  const f = useStore(filters);
  const { real, drill, anyDrill } = useMemo(() => selectEntries(all.values(), held, f), [all, held, f]);
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
        <IncidentTable entries={real} />
      </section>
      {anyDrill && (
        <section class="section drill-section" data-testid="drill-section">
          <h2 class="drill-banner">
            {t('drillBanner')} <span class="count">{drill.length}</span>
          </h2>
          <IncidentTable entries={drill} />
        </section>
      )}
    </div>
  );
}
