// Patient search (Health ID, name or phone) with each result's consent state.
// Clicking a result opens its chart; consent controls inside a result do not.
import { findPatients, requestConsent, type PatientSummary } from '../api';
import { emptyNote, fill, h, section } from '../dom';
import { run } from '../errors';
import { consentLabel, parsePositiveInt, patientDetails } from '../format';

export const DEFAULT_CONSENT_DAYS = 30;

export interface SearchDeps {
  openChart: (patientId: string) => void;
  /** After a consent request, the pending list changes too. */
  consentRequested: () => void;
}

export function renderSearch(deps: SearchDeps): HTMLElement {
  const input = h('input', {
    id: 'patient-query',
    type: 'search',
    name: 'query',
    placeholder: 'Health ID, name or phone',
    'aria-label': 'Patient search',
    autocomplete: 'off',
  });
  const button = h('button', { id: 'patient-search', type: 'submit' }, 'Search');
  const results = h('ul', { id: 'patient-results', class: 'results' });
  let lastQuery = '';

  const search = async (query: string): Promise<void> => {
    const found = await findPatients(query);
    lastQuery = query;
    fill(results, ...(found.length ? found.map(renderResult) : [emptyNote(`No patient matches "${query}".`)]));
  };

  const renderResult = (p: PatientSummary): HTMLLIElement => {
    const li = h(
      'li',
      { class: 'patient-result', dataset: { id: p.id }, tabindex: 0, title: 'Open chart' },
      h(
        'div',
        { class: 'who' },
        h('strong', {}, p.name),
        ' ',
        h('small', {}, p.healthId ? `Health ID ${p.healthId}` : 'No Health ID'),
      ),
      h('div', { class: 'details' }, h('small', {}, patientDetails(p))),
      consentControls(p),
    );
    const open = (ev: Event): void => {
      if ((ev.target as Element).closest('.consent-controls')) return;
      deps.openChart(p.id);
    };
    li.addEventListener('click', open);
    li.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && ev.target === li) open(ev);
    });
    return li;
  };

  const consentControls = (p: PatientSummary): HTMLElement => {
    const badge = h('mark', { class: `consent consent-${p.consent}` }, consentLabel(p.consent));
    if (p.consent !== 'none') return h('div', { class: 'consent-controls' }, badge);
    const days = h('input', {
      class: 'consent-days',
      type: 'number',
      min: 1,
      max: 365,
      value: DEFAULT_CONSENT_DAYS,
      'aria-label': 'Consent duration in days',
    });
    const ask = h('button', { class: 'request-consent secondary', type: 'button' }, 'Request consent');
    ask.addEventListener(
      'click',
      () =>
        void run(ask, async () => {
          const n = parsePositiveInt(days.value);
          if (n === null) throw new Error('Consent duration must be a whole number of days.');
          await requestConsent(p.id, n);
          deps.consentRequested();
          if (lastQuery) await search(lastQuery);
        }),
    );
    return h(
      'div',
      { class: 'consent-controls' },
      badge,
      h('div', { role: 'group' }, days, h('span', { class: 'unit' }, 'days'), ask),
    );
  };

  const form = h('form', { role: 'search' }, input, button);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    void run(button, () => search(q));
  });

  return section('Find a patient', form, results);
}
