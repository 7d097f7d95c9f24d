import { describe, expect, it } from 'vitest';
import {
  cameBackOnline,
  consentLabel,
  formatDate,
  formatDateTime,
  formatDispensed,
  formatDosage,
  formatLabValue,
  formatNumber,
  formatRange,
  formatReading,
  formatVital,
  isIsoDate,
  labFlag,
  labFlagClass,
  parseNumber,
  parsePositiveInt,
  patientDetails,
  remainingQuantity,
  sinceText,
  statusLabel,
  statusText,
} from '../src/format';
import { point, status } from './fixtures';

// vite.config.ts pins TZ=UTC for the tests, so "local" times equal the UTC ones here.
const NOW = new Date('2026-12-05T15:00:00Z');

describe('numbers', () => {
  it('drops trailing zeros and rounds to two decimals', () => {
    expect(formatNumber(72)).toBe('72');
    expect(formatNumber(5.6)).toBe('5.6');
    expect(formatNumber(72.456)).toBe('72.46');
    expect(formatNumber(Number.NaN)).toBe('—');
  });
  it('parses typed numbers, including a decimal comma', () => {
    expect(parseNumber(' 120 ')).toBe(120);
    expect(parseNumber('5,6')).toBe(5.6);
    expect(parseNumber('')).toBeNull();
    expect(parseNumber('12a')).toBeNull();
  });
  it('accepts only positive whole numbers where counts are expected', () => {
    expect(parsePositiveInt('30')).toBe(30);
    expect(parsePositiveInt('0')).toBeNull();
    expect(parsePositiveInt('2.5')).toBeNull();
    expect(parsePositiveInt('-3')).toBeNull();
  });
});

describe('dates', () => {
  it('formats instants as local "YYYY-MM-DD HH:MM"', () => {
    expect(formatDateTime('2026-12-05T10:42:31Z')).toBe('2026-12-05 10:42');
    expect(formatDateTime('2026-12-05T16:12:00+05:30')).toBe('2026-12-05 10:42');
  });
  it('leaves date-only values alone (no timezone shift) and shows junk raw', () => {
    expect(formatDateTime('1980-04-02')).toBe('1980-04-02');
    expect(formatDate('1980-04-02')).toBe('1980-04-02');
    expect(formatDate('2026-12-05T10:42:00Z')).toBe('2026-12-05');
    expect(formatDateTime('yesterday')).toBe('yesterday');
    expect(formatDateTime(null)).toBe('—');
  });
  it('validates calendar dates', () => {
    expect(isIsoDate('2027-06-30')).toBe(true);
    expect(isIsoDate('2028-02-29')).toBe(true);
    expect(isIsoDate('2027-02-29')).toBe(false);
    expect(isIsoDate('2027-6-30')).toBe(false);
    expect(isIsoDate('30/06/2027')).toBe(false);
  });
});

describe('status text', () => {
  it('names each state; syncing shows progress', () => {
    expect(statusLabel(status({ state: 'online' }))).toBe('Online');
    expect(statusLabel(status({ state: 'offline' }))).toBe('Offline');
    expect(statusLabel(status({ state: 'syncing', progress: { done: 3, total: 10 } }))).toBe('Syncing 3/10');
    expect(statusLabel(status({ state: 'syncing', progress: null }))).toBe('Syncing');
    expect(statusLabel(status({ state: 'signedOut', user: null }))).toBe('Signed out');
  });
  it('reads "Offline since 10:42" the same day', () => {
    expect(statusText(status({ state: 'offline', since: '2026-12-05T10:42:00Z' }), NOW)).toBe('Offline since 10:42');
    expect(sinceText('2026-12-05T10:42:00Z', NOW)).toBe('since 10:42');
  });
  it('adds the date when the state began on another day', () => {
    expect(statusText(status({ state: 'offline', since: '2026-12-04T23:05:00Z' }), NOW)).toBe(
      'Offline since 2026-12-04 23:05',
    );
  });
  it('omits "since" without a time', () => {
    expect(statusText(status({ state: 'online', since: '' }), NOW)).toBe('Online');
  });
  it('detects the return to online, but not sign-in or staying online', () => {
    expect(cameBackOnline(status({ state: 'online' }), status({ state: 'offline' }))).toBe(true);
    expect(cameBackOnline(status({ state: 'online' }), status({ state: 'syncing' }))).toBe(true);
    expect(cameBackOnline(status({ state: 'online' }), status({ state: 'online' }))).toBe(false);
    expect(cameBackOnline(status({ state: 'online' }), status({ state: 'signedOut' }))).toBe(false);
    expect(cameBackOnline(status({ state: 'online' }), null)).toBe(false);
    expect(cameBackOnline(status({ state: 'offline' }), status({ state: 'online' }))).toBe(false);
  });
});

describe('vitals', () => {
  it('shows blood pressure as systolic/diastolic', () => {
    expect(formatVital(point())).toBe('120/80 mmHg');
    expect(formatVital(point({ value2: null }))).toBe('120 mmHg');
  });
  it('shows single-value vitals with their unit', () => {
    expect(formatVital(point({ kind: 'glucose', value: 5.6, value2: null, unit: 'mmol/L' }))).toBe('5.6 mmol/L');
    expect(formatVital(point({ kind: 'weight', value: 72.5, value2: null, unit: 'kg' }))).toBe('72.5 kg');
    expect(formatVital(point({ kind: 'heartRate', value: 72, value2: null, unit: '' }))).toBe('72');
  });
  it('formats a reading line and marks queued points', () => {
    expect(formatReading(point())).toBe('120/80 mmHg · 2026-12-05 10:42');
    expect(formatReading(point({ pending: true }))).toBe('120/80 mmHg · 2026-12-05 10:42 (queued)');
  });
});

describe('dosage and dispensing', () => {
  it('writes the dosage out in words', () => {
    expect(formatDosage({ dose: 500, doseUnit: 'mg', timesPerDay: 2, durationDays: 5 })).toBe(
      '500 mg, twice a day for 5 days',
    );
    expect(
      formatDosage({ dose: 1, doseUnit: 'tablet', timesPerDay: 1, durationDays: 1, instructions: ' after food ' }),
    ).toBe('1 tablet, once a day for 1 day — after food');
    expect(formatDosage({ dose: 0.5, doseUnit: ' ', timesPerDay: 3, durationDays: 7, instructions: '' })).toBe(
      '0.5, 3 times a day for 7 days',
    );
  });
  it('shows partial fills as dispensed/quantity', () => {
    expect(formatDispensed({ dispensed: 10, quantity: 30, unit: 'tablet' })).toBe('10/30 tablet');
    expect(formatDispensed({ dispensed: 0, quantity: 30, unit: null })).toBe('0/30');
    expect(formatDispensed({ dispensed: 4, quantity: null, unit: 'strip' })).toBe('4 strip dispensed');
  });
  it('computes what is left, never below zero', () => {
    expect(remainingQuantity({ dispensed: 10, quantity: 30 })).toBe(20);
    expect(remainingQuantity({ dispensed: 35, quantity: 30 })).toBe(0);
    expect(remainingQuantity({ dispensed: 3, quantity: null })).toBeNull();
  });
});

describe('lab flags', () => {
  const lab = { value: 7.2, low: 3.5, high: 5.1, flag: null, unit: 'mmol/L', text: null } as const;
  it("uses the server's flag when present", () => {
    expect(labFlag({ ...lab, flag: 'L' })).toBe('L');
    expect(labFlag({ ...lab, flag: 'N' })).toBeNull();
  });
  it('computes H/L from the reference range otherwise', () => {
    expect(labFlag(lab)).toBe('H');
    expect(labFlag({ ...lab, value: 3.1 })).toBe('L');
    expect(labFlag({ ...lab, value: 4.0 })).toBeNull();
    expect(labFlag({ ...lab, value: 5.1 })).toBeNull(); // the bounds are in range
    expect(labFlag({ ...lab, value: 250, low: null, high: 200 })).toBe('H');
    expect(labFlag({ ...lab, value: null })).toBeNull();
  });
  it('maps flags to classes', () => {
    expect(labFlagClass('H')).toBe('lab-high');
    expect(labFlagClass('L')).toBe('lab-low');
    expect(labFlagClass(null)).toBe('');
  });
  it('formats ranges and values', () => {
    expect(formatRange(lab)).toBe('3.5–5.1 mmol/L');
    expect(formatRange({ low: 40, high: null, unit: 'mg/dL' })).toBe('≥ 40 mg/dL');
    expect(formatRange({ low: null, high: 200, unit: null })).toBe('≤ 200');
    expect(formatRange({ low: null, high: null, unit: 'g/L' })).toBe('—');
    expect(formatLabValue(lab)).toBe('7.2 mmol/L');
    expect(formatLabValue({ value: null, text: 'Positive', unit: null })).toBe('Positive');
  });
});

describe('patients', () => {
  it('joins the known details', () => {
    expect(patientDetails({ gender: 'female', birthDate: '1980-04-02', phone: '+91 9800000000' })).toBe(
      'female · 1980-04-02 · +91 9800000000',
    );
    expect(patientDetails({ gender: null, birthDate: null, phone: null })).toBe('');
  });
  it('labels consent states', () => {
    expect(consentLabel('active')).toBe('Consent active');
    expect(consentLabel('none')).toBe('No consent');
  });
});
