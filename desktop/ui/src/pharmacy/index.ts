// Pharmacy mode: the prescription queue (or lookup results), the selected prescription
// with its dispense form, and the dispense history.
import { dispenseHistory, lookupPrescriptions, pharmacyQueue, type Prescription } from '../api';
import { emptyNote, fill, h, section, type ModeView } from '../dom';
import { run, showError } from '../errors';
import { cameBackOnline } from '../format';
import { subscribeStatus } from '../store';
import { renderDispensePanel } from './dispense';
import { historyTable } from './history';
import { renderQueueRows, queueTable } from './queue';

export function renderPharmacy(): ModeView {
  /** null: the open queue; otherwise the lookup being shown. */
  let lookup: string | null = null;
  let list: Prescription[] = [];
  let selectedId: string | null = null;
  /** The prescription the panel shows, as JSON: rebuild the panel only when it changed,
   *  so a background reload does not wipe a half-filled dispense form. */
  let shown = '';

  const caption = h('caption', { id: 'queue-caption' });
  const body = h('tbody');
  const empty = emptyNote('');
  const showQueue = h(
    'button',
    { id: 'show-queue', type: 'button', class: 'secondary outline', hidden: true },
    'Back to queue',
  );
  const detail = h('div', { id: 'rx-detail-slot' });
  const result = h('p', { id: 'dispense-result', role: 'status' });
  const history = h('div', { id: 'history-slot' });

  const query = h('input', {
    id: 'rx-query',
    type: 'search',
    placeholder: 'Health ID or prescription id',
    'aria-label': 'Prescription lookup',
  });
  const lookupBtn = h('button', { id: 'rx-lookup', type: 'submit' }, 'Look up');
  const lookupForm = h('form', { role: 'search' }, query, lookupBtn);

  const select = (rx: Prescription): void => {
    selectedId = rx.id;
    result.textContent = '';
    renderList();
  };

  const renderList = (): void => {
    caption.textContent = lookup === null ? 'Open prescriptions' : `Lookup: ${lookup}`;
    showQueue.hidden = lookup === null;
    renderQueueRows(body, list, selectedId, select);
    empty.textContent = lookup === null ? 'The queue is empty.' : `No prescription matches "${lookup}".`;
    empty.hidden = list.length > 0;
    const rx = list.find((p) => p.id === selectedId);
    if (rx) {
      const json = JSON.stringify(rx);
      if (json !== shown) {
        shown = json;
        fill(
          detail,
          renderDispensePanel(rx, reload, (m) => (result.textContent = m)),
        );
      }
    } else {
      // Completed or held prescriptions leave the queue; so does the selection.
      selectedId = null;
      shown = '';
      detail.replaceChildren();
    }
  };

  const reload = async (): Promise<void> => {
    const [rxs, dispenses] = await Promise.all([
      lookup === null ? pharmacyQueue() : lookupPrescriptions(lookup),
      dispenseHistory(),
    ]);
    list = rxs;
    renderList();
    fill(history, dispenses.length ? historyTable(dispenses) : emptyNote('Nothing dispensed yet.'));
  };
  const reloadReporting = (): void => void reload().catch(showError);

  lookupForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = query.value.trim();
    lookup = q || null;
    void run(lookupBtn, reload);
  });
  showQueue.addEventListener('click', () => {
    lookup = null;
    query.value = '';
    void run(showQueue, reload);
  });

  const el = h(
    'div',
    { id: 'pharmacy' },
    section(
      'Prescriptions',
      lookupForm,
      showQueue,
      h('div', { class: 'table-wrap' }, queueTable(body, caption)),
      empty,
    ),
    result,
    detail,
    section('Dispense history', history),
  );

  reloadReporting();
  const unsubscribe = subscribeStatus((s, previous) => {
    if (cameBackOnline(s, previous)) reloadReporting();
  });
  return { el, dispose: unsubscribe };
}
