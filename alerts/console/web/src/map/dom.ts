// Tooltips and popups built as DOM elements with textContent: device-supplied text is never parsed as HTML
// (Leaflet treats a string passed to bindTooltip/bindPopup as HTML).

type Child = HTMLElement | string | null | undefined | false;

export function el(tag: string, className: string | null, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

export function link(href: string, text: string): HTMLElement {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  return a;
}
