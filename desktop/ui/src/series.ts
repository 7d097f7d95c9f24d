// Pure transform from the contract's VitalSeries to what a line chart needs. Kept apart
// from charts.ts so it can be tested without Chart.js or a canvas.
import type { Chart, VitalKind, VitalPoint, VitalSeries } from './api';
import { formatDateTime, VITAL_KINDS } from './format';

export interface LineDataset {
  label: string;
  /** null leaves a gap (a blood pressure without diastolic). */
  data: (number | null)[];
}

export interface SeriesData {
  /** One x label per point, oldest first. */
  labels: string[];
  datasets: LineDataset[];
  /** Per point, parallel to labels: drawn hollow (queued) or as a triangle (patient-reported). */
  pending: boolean[];
  selfReported: boolean[];
}

function timeOf(p: VitalPoint): number {
  const t = Date.parse(p.time);
  // Points with an unreadable time go last rather than breaking the sort.
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/** Oldest first; ties keep the server's order (Array.prototype.sort is stable). */
export function sortedPoints(points: readonly VitalPoint[]): VitalPoint[] {
  return [...points].sort((a, b) => timeOf(a) - timeOf(b));
}

/** Newest first, for the text list under each chart. */
export function newestFirst(points: readonly VitalPoint[]): VitalPoint[] {
  return sortedPoints(points).reverse();
}

export function latestPoint(series: VitalSeries): VitalPoint | null {
  const sorted = sortedPoints(series.points);
  return sorted.length ? sorted[sorted.length - 1]! : null;
}

/** Blood pressure gives two lines (systolic, diastolic); every other kind one.
 *  Categorical x labels (formatted times) avoid pulling in a date adapter for
 *  Chart.js's time scale; readings are irregular but few, so even spacing reads fine. */
export function toSeriesData(series: VitalSeries): SeriesData {
  const points = sortedPoints(series.points);
  const labels = points.map((p) => formatDateTime(p.time));
  const datasets: LineDataset[] =
    series.kind === 'bloodPressure'
      ? [
          { label: 'Systolic', data: points.map((p) => p.value) },
          { label: 'Diastolic', data: points.map((p) => p.value2) },
        ]
      : [{ label: series.label, data: points.map((p) => p.value) }];
  return {
    labels,
    datasets,
    pending: points.map((p) => p.pending),
    selfReported: points.map((p) => p.selfReported),
  };
}

/** The chart's series for a kind, or an empty one, so every kind always has its
 *  canvas and list (stable element ids, and "no readings yet" is information too). */
export function seriesFor(chart: Pick<Chart, 'vitals'>, kind: VitalKind): VitalSeries {
  const found = chart.vitals.find((s) => s.kind === kind);
  if (found) return found;
  const meta = VITAL_KINDS.find((k) => k.kind === kind)!;
  return { kind, label: meta.label, unit: meta.unit, points: [] };
}
