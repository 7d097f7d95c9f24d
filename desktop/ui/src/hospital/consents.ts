// Consent requests the patients have not answered yet.
import { pendingConsents, type ConsentSummary } from '../api';
import { emptyNote, fill, h, section } from '../dom';
import { showError } from '../errors';
import { formatDate } from '../format';

export interface PendingConsents {
  el: HTMLElement;
  reload: () => Promise<void>;
}

export function renderPendingConsents(): PendingConsents {
  const list = h('ul', { id: 'pending-consents' });
  const item = (c: ConsentSummary): HTMLLIElement =>
    h(
      'li',
      { class: 'pending-consent', dataset: { id: c.id, patientId: c.patientId } },
      h('strong', {}, c.patientName ?? c.patientId),
      ` · ${c.status}`,
      c.start || c.end ? ` · ${formatDate(c.start)} → ${formatDate(c.end)}` : '',
    );
  const reload = async (): Promise<void> => {
    try {
      const all = await pendingConsents();
      fill(list, ...(all.length ? all.map(item) : [emptyNote('No consent requests waiting.')]));
    } catch (e) {
      showError(e);
    }
  };
  return { el: section('Pending consent requests', list), reload };
}
