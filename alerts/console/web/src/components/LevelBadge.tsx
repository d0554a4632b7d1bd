import { levelName, levelRoman } from '../i18n';
import type { Level } from '../types';

/** China's warning level: colour, "红色 Red" and the grade (I..IV). */
export function LevelBadge({ level }: { level: Level }) {
  return (
    <span class={`level-badge lv-${level}`}>
      {levelName(level)} <span class="roman">{levelRoman(level)}</span>
    </span>
  );
}
