// A tiny element builder. All text goes in through textContent (string children) and
// attributes through setAttribute, never innerHTML, so server text cannot become markup.

/** A mode's screen (hospital, pharmacy): its root and what to release when it goes. */
export interface ModeView {
  el: HTMLElement;
  dispose: () => void;
}

export type Child = Node | string | number | null | undefined | false;

type Handler = (ev: Event) => void;
export type Props = Record<string, string | number | boolean | null | undefined | Handler | Record<string, string>>;

/** h('button', {id: 'x', class: 'secondary', onclick: fn}, 'Text'). `dataset` takes an
 *  object; `value`/`checked` set the property (what a form reads); `on*` functions
 *  become listeners; false/null/undefined attributes are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') {
      el.addEventListener(key.replace(/^on/, ''), v);
    } else if (key === 'dataset' && typeof v === 'object') {
      Object.assign(el.dataset, v);
    } else if (key === 'class') {
      el.className = String(v);
    } else if (key === 'value' || key === 'checked') {
      (el as unknown as Record<string, unknown>)[key] = key === 'checked' ? Boolean(v) : String(v);
    } else if (typeof v !== 'object') {
      el.setAttribute(key, v === true ? '' : String(v));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replace everything inside `parent`. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

/** A labelled form field the way Pico styles it: <label>Text <input></label>. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h('label', {}, label, control, hint ? h('small', {}, hint) : null);
}

/** A section with a heading; empty lists say so instead of showing nothing. */
export function section(title: string, ...children: Child[]): HTMLElement {
  return h('section', {}, h('h3', {}, title), ...children);
}

export function emptyNote(text: string): HTMLElement {
  return h('p', { class: 'empty' }, text);
}
