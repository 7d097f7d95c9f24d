import { describe, expect, it } from 'vitest';
import { latestPoint, newestFirst, seriesFor, toSeriesData } from '../src/series';
import { point, series } from './fixtures';

const bp = series(
  'bloodPressure',
  [
    point({ id: 'b', time: '2026-12-05T10:42:00Z', value: 130, value2: 85, pending: true }),
    point({ id: 'a', time: '2026-12-04T08:00:00Z', value: 120, value2: 80 }),
    point({ id: 'c', time: '2026-12-05T12:00:00Z', value: 125, value2: null, selfReported: true }),
  ],
  'Blood pressure',
  'mmHg',
);

describe('toSeriesData', () => {
  it('splits blood pressure into systolic and diastolic lines, oldest first', () => {
    const d = toSeriesData(bp);
    expect(d.labels).toEqual(['2026-12-04 08:00', '2026-12-05 10:42', '2026-12-05 12:00']);
    expect(d.datasets).toEqual([
      { label: 'Systolic', data: [120, 130, 125] },
      { label: 'Diastolic', data: [80, 85, null] },
    ]);
    expect(d.pending).toEqual([false, true, false]);
    expect(d.selfReported).toEqual([false, false, true]);
  });

  it('gives other kinds one line named after the series', () => {
    const g = series(
      'glucose',
      [
        point({ kind: 'glucose', time: '2026-12-05T09:00:00Z', value: 110, value2: null }),
        point({ kind: 'glucose', time: '2026-12-03T09:00:00Z', value: 98, value2: null }),
      ],
      'Glucose',
      'mg/dL',
    );
    const d = toSeriesData(g);
    expect(d.datasets).toEqual([{ label: 'Glucose', data: [98, 110] }]);
    expect(d.labels).toEqual(['2026-12-03 09:00', '2026-12-05 09:00']);
  });

  it('handles an empty series', () => {
    const d = toSeriesData(series('weight', []));
    expect(d.labels).toEqual([]);
    expect(d.datasets).toEqual([{ label: 'weight', data: [] }]);
  });

  it('puts points with unreadable times last instead of failing', () => {
    const d = toSeriesData(
      series('heartRate', [
        point({ kind: 'heartRate', time: 'garbage', value: 1, value2: null }),
        point({ kind: 'heartRate', time: '2026-12-05T09:00:00Z', value: 2, value2: null }),
      ]),
    );
    expect(d.datasets[0]!.data).toEqual([2, 1]);
  });
});

describe('reading order', () => {
  it('lists newest first and finds the latest', () => {
    expect(newestFirst(bp.points).map((p) => p.id)).toEqual(['c', 'b', 'a']);
    expect(latestPoint(bp)?.id).toBe('c');
    expect(latestPoint(series('weight', []))).toBeNull();
  });
  it('does not reorder the chart data it was given', () => {
    newestFirst(bp.points);
    expect(bp.points.map((p) => p.id)).toEqual(['b', 'a', 'c']);
  });
});

describe('seriesFor', () => {
  it('returns the chart series, or an empty one with the default label and unit', () => {
    expect(seriesFor({ vitals: [bp] }, 'bloodPressure')).toBe(bp);
    expect(seriesFor({ vitals: [bp] }, 'weight')).toEqual({ kind: 'weight', label: 'Weight', unit: 'kg', points: [] });
  });
});
