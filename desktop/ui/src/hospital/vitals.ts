// Vitals: one chart per kind with the latest value and a plain list of readings
// (the list is what screen readers and the e2e test read), plus the patient-reported
// points waiting for the doctor's Verify / Reject.
import { verifyObservation, type Chart, type VitalPoint } from '../api';
import { drawSeries } from '../charts';
import { emptyNote, h, section } from '../dom';
import { run } from '../errors';
import { formatReading, formatVital, VITAL_KINDS } from '../format';
import { latestPoint, newestFirst, seriesFor, toSeriesData } from '../series';

export function renderVitals(chart: Chart): { el: HTMLElement; draw: () => void } {
  const cards: { canvas: HTMLCanvasElement; draw: () => void }[] = [];
  const grid = h('div', { class: 'vitals-grid' });

  for (const { kind } of VITAL_KINDS) {
    const series = seriesFor(chart, kind);
    const latest = latestPoint(series);
    const canvas = h('canvas', { id: `chart-${kind}`, 'aria-label': `${series.label} chart`, role: 'img' });
    const readings = h(
      'ul',
      { id: `readings-${kind}`, class: 'readings' },
      ...newestFirst(series.points).map((p) =>
        h('li', { class: readingClass(p), dataset: { id: p.id } }, formatReading(p)),
      ),
    );
    const card = h(
      'article',
      { class: 'vital', dataset: { kind } },
      h(
        'header',
        {},
        h('strong', {}, series.label),
        ' ',
        h('span', { id: `latest-${kind}`, class: 'latest' }, latest ? formatVital(latest) : 'No readings yet'),
      ),
      h('div', { class: 'vital-chart' }, canvas),
      series.points.length ? null : emptyNote('No readings yet.'),
      // Always visible (not in a collapsed <details>): WebDriver reads only displayed text.
      readings,
    );
    grid.append(card);
    cards.push({ canvas, draw: () => drawSeries(canvas, toSeriesData(series), series.unit) });
  }

  return {
    el: section('Vitals', grid),
    // Chart.js measures its container, so drawing waits until the cards are in the document.
    draw: () => cards.forEach((c) => c.draw()),
  };
}

function readingClass(p: VitalPoint): string {
  return ['reading', p.pending ? 'queued' : '', p.selfReported ? 'self-reported' : ''].filter(Boolean).join(' ');
}

/** Patient-reported readings: shown apart until a clinician accepts or rejects them. */
export function renderUnverified(points: VitalPoint[], reload: () => Promise<void>): HTMLElement | null {
  if (!points.length) return null;
  const item = (p: VitalPoint): HTMLLIElement => {
    const label = VITAL_KINDS.find((k) => k.kind === p.kind)?.label ?? p.kind;
    const verify = h('button', { class: 'verify', type: 'button' }, 'Verify');
    const reject = h('button', { class: 'reject secondary outline', type: 'button' }, 'Reject');
    const decide = (btn: HTMLButtonElement, accept: boolean): void =>
      void run(btn, async () => {
        await verifyObservation(p.id, accept);
        await reload();
      });
    verify.addEventListener('click', () => decide(verify, true));
    reject.addEventListener('click', () => decide(reject, false));
    return h(
      'li',
      { class: 'unverified-point', dataset: { id: p.id } },
      `${label}: ${formatReading(p)} `,
      verify,
      ' ',
      reject,
    );
  };
  return section('Patient-reported, unverified', h('ul', { id: 'unverified' }, ...points.map(item)));
}
