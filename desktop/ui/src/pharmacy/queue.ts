// The prescription table: the open queue, or the results of a lookup by Health ID or
// prescription id. Rows are `.queue-row[data-id]`; clicking one selects it.
import type { Prescription } from '../api';
import { h } from '../dom';
import { EMPTY, formatDate, formatDispensed } from '../format';

export function renderQueueRows(
  body: HTMLTableSectionElement,
  list: Prescription[],
  selectedId: string | null,
  select: (rx: Prescription) => void,
): void {
  body.replaceChildren(
    ...list.map((rx) => {
      const tr = h(
        'tr',
        {
          class: `queue-row${rx.id === selectedId ? ' selected' : ''}`,
          dataset: { id: rx.id },
          tabindex: 0,
          'aria-selected': rx.id === selectedId ? 'true' : 'false',
        },
        h('td', {}, formatDate(rx.authoredOn)),
        h('td', {}, h('strong', {}, rx.patientName ?? EMPTY), h('br'), h('small', {}, rx.healthId ?? '')),
        h('td', {}, h('strong', {}, rx.medication), h('br'), h('small', {}, rx.dosage ?? '')),
        h('td', { class: 'dispensed' }, formatDispensed(rx)),
        h('td', { class: 'rx-status' }, rx.status),
        h('td', {}, rx.prescriber ?? EMPTY),
      );
      tr.addEventListener('click', () => select(rx));
      tr.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') select(rx);
      });
      return tr;
    }),
  );
}

export function queueTable(body: HTMLTableSectionElement, caption: HTMLElement): HTMLTableElement {
  return h(
    'table',
    { id: 'queue', class: 'striped' },
    caption,
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'Written'),
        h('th', {}, 'Patient'),
        h('th', {}, 'Medication'),
        h('th', {}, 'Dispensed'),
        h('th', {}, 'Status'),
        h('th', {}, 'Prescriber'),
      ),
    ),
    body,
  );
}
