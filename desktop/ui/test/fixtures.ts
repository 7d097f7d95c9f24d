import type { Status, VitalPoint, VitalSeries } from '../src/api';

export function status(over: Partial<Status> = {}): Status {
  return {
    state: 'online',
    since: '2026-12-05T10:42:00Z',
    server: 'http://127.0.0.1:8080/fhir',
    user: { reference: 'Practitioner/p1', name: 'Dr. Asha Rao', mode: 'hospital' },
    progress: null,
    pending: 0,
    conflicts: 0,
    ...over,
  };
}

export function point(over: Partial<VitalPoint> = {}): VitalPoint {
  return {
    id: 'o1',
    kind: 'bloodPressure',
    time: '2026-12-05T10:42:00Z',
    value: 120,
    value2: 80,
    unit: 'mmHg',
    selfReported: false,
    status: 'final',
    pending: false,
    ...over,
  };
}

export function series(kind: VitalSeries['kind'], points: VitalPoint[], label: string = kind, unit = ''): VitalSeries {
  return { kind, label, unit, points };
}
