// The chart view for one patient: banner, clinical lists, vitals, labs, documents and
// the write forms. Data sections are rebuilt on every (re)load; the forms are not.
import { openChart, type Chart, type Encounter, type LabResult } from '../api';
import { destroyCharts } from '../charts';
import { emptyNote, fill, h, section } from '../dom';
import { showError } from '../errors';
import { EMPTY, formatDate, formatDateTime, formatLabValue, formatRange, labFlag, labFlagClass } from '../format';
import { renderForms } from './forms';
import { renderUnverified, renderVitals } from './vitals';

export interface ChartView {
  el: HTMLElement;
  /** Re-read the chart (after a write, or when the connection comes back). */
  reload: () => Promise<void>;
  stale: () => boolean;
  dispose: () => void;
}

export function renderChartView(patientId: string, back: () => void): ChartView {
  const data = h('div', { class: 'chart-data', 'aria-busy': 'true' }, 'Opening chart…');
  let current: Chart | null = null;
  let loading: Promise<void> | null = null;
  let again: Promise<void> | null = null;

  const reload = (): Promise<void> => {
    if (!loading) {
      loading = load().finally(() => {
        loading = null;
      });
      return loading;
    }
    // A reload asked for while one runs may follow a write that the running one
    // predates, so read once more afterwards; further requests meanwhile share that read.
    again ??= loading.then(() => {
      again = null;
      return reload();
    });
    return again;
  };
  const load = async (): Promise<void> => {
    try {
      const chart = await openChart(patientId);
      current = chart;
      show(chart);
    } catch (e) {
      data.removeAttribute('aria-busy');
      if (!current) fill(data, emptyNote('The chart could not be opened.'));
      showError(e);
    }
  };

  const forms = renderForms(patientId, reload);
  const el = h(
    'article',
    { id: 'chart', dataset: { patientId } },
    h(
      'nav',
      {},
      h(
        'button',
        { id: 'chart-back', class: 'secondary outline', type: 'button', onclick: back },
        '← Back to patients',
      ),
    ),
    data,
    forms.el,
  );

  const show = (chart: Chart): void => {
    destroyCharts(data);
    const vitals = renderVitals(chart);
    fill(
      data,
      banner(chart),
      h(
        'div',
        { class: 'grid' },
        listSection('Allergies', 'allergies', chart.allergies, (a) => [
          h('strong', {}, a.substance),
          a.criticality ? ` · ${a.criticality} criticality` : '',
          a.reaction ? ` · ${a.reaction}` : '',
        ]),
        listSection('Medications', 'medications', chart.medications, (m) => [
          h('strong', {}, m.medication),
          m.dosage ? ` · ${m.dosage}` : '',
          ` · ${m.status}`,
          m.authoredOn ? ` · since ${formatDate(m.authoredOn)}` : '',
        ]),
        listSection('Problems', 'problems', chart.problems, (p) => [
          h('strong', {}, p.text),
          p.onset ? ` · since ${formatDate(p.onset)}` : '',
          p.status ? ` · ${p.status}` : '',
        ]),
      ),
      renderUnverified(chart.unverified, reload),
      vitals.el,
      labsSection(chart.labs),
      encountersSection(chart.encounters),
      listSection('Documents', 'documents', chart.documents, (d) => [
        h('strong', {}, d.title),
        ` · ${formatDate(d.date)}`,
        d.contentType ? ` · ${d.contentType}` : '',
      ]),
    );
    data.removeAttribute('aria-busy');
    forms.setEncounters(chart.encounters);
    vitals.draw();
  };

  void reload();
  return {
    el,
    reload,
    stale: () => current?.stale ?? false,
    dispose: () => destroyCharts(el),
  };
}

function banner(chart: Chart): HTMLElement {
  const p = chart.patient;
  return h(
    'header',
    { class: 'chart-banner' },
    h('h2', { id: 'chart-name' }, p.name),
    h(
      'p',
      {},
      'Health ID ',
      h('strong', { id: 'chart-health-id' }, p.healthId ?? EMPTY),
      ` · ${p.gender ?? 'gender unknown'} · born ${formatDate(p.birthDate)}`,
      chart.stale
        ? h(
            'mark',
            { id: 'stale-badge', title: 'Shown from the local copy; the server could not be reached.' },
            chart.since ? `stale since ${formatDateTime(chart.since)}` : 'stale',
          )
        : null,
    ),
  );
}

/** A titled list; empty lists say "None recorded." rather than disappearing. */
function listSection<T extends { id: string }>(
  title: string,
  id: string,
  items: T[],
  line: (item: T) => (Node | string)[],
): HTMLElement {
  return section(
    title,
    items.length
      ? h('ul', { id }, ...items.map((i) => h('li', { dataset: { id: i.id } }, ...line(i))))
      : emptyNote('None recorded.'),
  );
}

/** Newest first; encounters without a start go last. */
function encountersSection(encounters: Encounter[]): HTMLElement {
  const key = (e: Encounter): number => {
    const t = e.start ? Date.parse(e.start) : NaN;
    return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
  };
  const sorted = [...encounters].sort((a, b) => key(b) - key(a));
  return section(
    'Encounters',
    sorted.length
      ? h(
          'ol',
          { id: 'encounters', class: 'timeline' },
          ...sorted.map((e) =>
            h(
              'li',
              { dataset: { id: e.id } },
              h('time', {}, formatDateTime(e.start)),
              e.end ? ` – ${formatDateTime(e.end)}` : '',
              ' · ',
              h('strong', {}, e.type),
              e.class ? ` (${e.class})` : '',
              ` · ${e.status}`,
            ),
          ),
        )
      : emptyNote('No encounters yet.'),
  );
}

function labsSection(labs: LabResult[]): HTMLElement {
  if (!labs.length) return section('Lab results', emptyNote('No lab results.'));
  const row = (l: LabResult): HTMLTableRowElement => {
    const flag = labFlag(l);
    const cls = labFlagClass(flag);
    return h(
      'tr',
      { class: `lab ${cls}`.trim(), dataset: { id: l.id } },
      h('td', {}, l.name),
      h('td', { class: `lab-value ${cls}`.trim() }, formatLabValue(l)),
      h('td', { class: `lab-flag ${cls}`.trim() }, flag ?? ''),
      h('td', {}, formatRange(l)),
      h('td', {}, formatDateTime(l.time)),
    );
  };
  return section(
    'Lab results',
    h(
      'table',
      { id: 'labs', class: 'striped' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'Test'),
          h('th', {}, 'Result'),
          h('th', {}, 'Flag'),
          h('th', {}, 'Reference range'),
          h('th', {}, 'Time'),
        ),
      ),
      h('tbody', {}, ...labs.map(row)),
    ),
  );
}
