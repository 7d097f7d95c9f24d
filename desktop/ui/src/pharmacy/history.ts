// What this pharmacy has handed out.
import type { Dispense } from '../api';
import { h } from '../dom';
import { EMPTY, formatDate, formatDateTime, formatNumber } from '../format';

export function historyTable(list: Dispense[]): HTMLTableElement {
  return h(
    'table',
    { id: 'history', class: 'striped' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'When'),
        h('th', {}, 'Patient'),
        h('th', {}, 'Medication'),
        h('th', {}, 'Quantity'),
        h('th', {}, 'Batch'),
        h('th', {}, 'Expiry'),
        h('th', {}, 'Status'),
      ),
    ),
    h(
      'tbody',
      {},
      ...list.map((d) =>
        h(
          'tr',
          { class: 'history-row', dataset: { id: d.id } },
          h('td', {}, formatDateTime(d.when)),
          h('td', {}, d.patientName ?? EMPTY),
          h('td', {}, d.medication),
          h('td', {}, d.quantity === null ? EMPTY : `${formatNumber(d.quantity)}${d.unit ? ` ${d.unit}` : ''}`),
          h('td', {}, d.batch ?? EMPTY),
          h('td', {}, formatDate(d.expiry)),
          h('td', {}, d.status),
        ),
      ),
    ),
  );
}
