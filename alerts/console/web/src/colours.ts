/** China's four warning levels' colours (also in styles/base.css as --red etc.). */
export const LEVEL_COLOURS = { red: '#d40000', orange: '#f07c00', yellow: '#e6b800', blue: '#1f6fd1' } as const;
export const DRILL_COLOUR = '#8e44ad';
