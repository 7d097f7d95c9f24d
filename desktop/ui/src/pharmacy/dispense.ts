// The selected prescription: dispense (partial fills allowed), complete, or hold.
import { dispense, setPrescriptionStatus, type Prescription, type Written } from '../api';
import { field, h } from '../dom';
import { run } from '../errors';
import { EMPTY, formatDispensed, formatNumber, remainingQuantity } from '../format';
import { buildDispense, holdReason, localToday } from './validate';

/** `changed` reloads the queue and history after any write (which rebuilds this panel,
 *  so the outcome is reported through `report` to an element that outlives it). */
export function renderDispensePanel(
  rx: Prescription,
  changed: () => Promise<void>,
  report: (message: string) => void,
): HTMLElement {
  const left = remainingQuantity(rx);

  // Empty fields with hints rather than prefilled values: typing into a prefilled
  // field appends to it, which is how "10" becomes "3010".
  const quantity = h('input', {
    id: 'dispense-quantity',
    inputmode: 'decimal',
    placeholder: left === null ? '' : `up to ${formatNumber(left)}`,
    autocomplete: 'off',
  });
  const unit = h('input', { id: 'dispense-unit', placeholder: rx.unit ?? 'tablet', autocomplete: 'off' });
  const batch = h('input', { id: 'dispense-batch', autocomplete: 'off' });
  // A text field, not type=date: date pickers differ per WebView and ignore typed ISO dates.
  const expiry = h('input', {
    id: 'dispense-expiry',
    placeholder: 'YYYY-MM-DD',
    pattern: '\\d{4}-\\d{2}-\\d{2}',
    autocomplete: 'off',
  });
  const save = h('button', { id: 'dispense-save', type: 'submit' }, 'Dispense');

  const done = (w: Written, what: string): void =>
    report(w.queued ? `${what} queued — it will be sent when back online.` : `${what} saved.`);

  const form = h(
    'form',
    { id: 'dispense-form', novalidate: true },
    h('div', { class: 'grid' }, field('Quantity', quantity), field('Unit', unit)),
    h('div', { class: 'grid' }, field('Batch', batch), field('Expiry date', expiry)),
    save,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    report('');
    void run(save, async () => {
      const d = buildDispense(
        { quantity: quantity.value, unit: unit.value, batch: batch.value, expiry: expiry.value },
        rx,
        localToday(new Date()),
      );
      done(await dispense(rx.id, d), 'Dispense');
      form.reset();
      await changed();
    });
  });

  const complete = h('button', { id: 'rx-complete', type: 'button', class: 'secondary' }, 'Complete');
  complete.addEventListener(
    'click',
    () =>
      void run(complete, async () => {
        done(await setPrescriptionStatus(rx.id, 'completed', null), 'Status');
        await changed();
      }),
  );
  const reason = h('input', { id: 'hold-reason', placeholder: 'Reason (required)', 'aria-label': 'Reason for hold' });
  const hold = h('button', { id: 'rx-hold', type: 'button', class: 'secondary outline' }, 'Put on hold');
  hold.addEventListener(
    'click',
    () =>
      void run(hold, async () => {
        done(await setPrescriptionStatus(rx.id, 'on-hold', holdReason(reason.value)), 'Status');
        await changed();
      }),
  );

  return h(
    'article',
    { id: 'rx-detail', dataset: { id: rx.id } },
    h(
      'header',
      {},
      h('strong', {}, rx.medication),
      ` · ${rx.patientName ?? EMPTY}${rx.healthId ? ` (${rx.healthId})` : ''}`,
      h('br'),
      h('small', {}, `${rx.dosage ?? 'No dosage text'} · dispensed ${formatDispensed(rx)} · ${rx.status}`),
    ),
    form,
    h('div', { class: 'rx-actions' }, complete, h('div', { role: 'group' }, reason, hold)),
  );
}
