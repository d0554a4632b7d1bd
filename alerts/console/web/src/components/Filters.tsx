import { session } from '../auth';
import { departmentName, hazardName, levelName, t, useLang } from '../i18n';
import { useStore } from '../lib/store';
import { filters, type Filters as F } from '../alerts/select';
import { includeClosed } from '../alerts/live';
import { DEPARTMENTS, HAZARDS, LEVELS } from '../types';

function Select<K extends keyof F>(props: { field: K; label: string; options: [F[K], string][] }) {
  const f = useStore(filters);
  return (
    <label class="filter">
      <span>{props.label}</span>
      <select
        data-testid={`filter-${props.field}`}
        value={f[props.field] as string}
        onChange={(e) => {
          const value = (e.target as HTMLSelectElement).value as F[K];
          filters.update((prev) => ({ ...prev, [props.field]: value }));
          if (props.field === 'state') void includeClosed(value === 'all').catch(() => undefined);
        }}
      >
        {props.options.map(([value, text]) => (
          <option key={value} value={value as string}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );
}

export function Filters() {
  useLang();
  const officer = useStore(session).officer;
  const departments = officer?.admin ? DEPARTMENTS : officer?.departments ?? [];
  const all = t('filterAll');
  return (
    <div class="filters">
      <Select field="department" label={t('filterDepartment')} options={[['', all], ...departments.map((d) => [d, departmentName(d)] as [typeof d, string])]} />
      <Select field="hazard" label={t('filterHazard')} options={[['', all], ...HAZARDS.map((h) => [h, hazardName(h)] as [typeof h, string])]} />
      <Select field="level" label={t('filterLevel')} options={[['', all], ...LEVELS.map((l) => [l, levelName(l)] as [typeof l, string])]} />
      <Select field="state" label={t('filterState')} options={[['open', t('stateOpen')], ['all', t('stateAll')]]} />
    </div>
  );
}
