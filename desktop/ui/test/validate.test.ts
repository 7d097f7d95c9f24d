import { describe, expect, it } from 'vitest';
import { appointmentActions, buildPrescription, buildVital } from '../src/hospital/validate';
import { buildDispense, holdReason, localToday } from '../src/pharmacy/validate';

describe('buildVital', () => {
  it('builds a blood pressure with both values', () => {
    expect(buildVital('bloodPressure', '120', '80')).toEqual({ kind: 'bloodPressure', value: 120, value2: 80 });
  });
  it('ignores the second value for other kinds', () => {
    expect(buildVital('glucose', '5,6', '99')).toEqual({ kind: 'glucose', value: 5.6 });
  });
  it('rejects missing, non-numeric and swapped values', () => {
    expect(() => buildVital('bloodPressure', '120', '')).toThrow(/diastolic/i);
    expect(() => buildVital('weight', 'abc', '')).toThrow(/number/);
    expect(() => buildVital('bloodPressure', '80', '120')).toThrow(/lower than systolic/);
    expect(() => buildVital('temperature', '37', '')).toThrow(/Choose/);
  });
});

describe('buildPrescription', () => {
  const input = {
    medication: ' Metformin 500 mg tablet ',
    dose: '1',
    doseUnit: 'tablet',
    timesPerDay: '2',
    durationDays: '30',
    instructions: '',
  };
  it('trims text and leaves out empty instructions', () => {
    expect(buildPrescription(input)).toEqual({
      medication: 'Metformin 500 mg tablet',
      dose: 1,
      doseUnit: 'tablet',
      timesPerDay: 2,
      durationDays: 30,
    });
    expect(buildPrescription({ ...input, instructions: 'after food' }).instructions).toBe('after food');
  });
  it('rejects what the pharmacy could not act on', () => {
    expect(() => buildPrescription({ ...input, medication: ' ' })).toThrow(/medication/);
    expect(() => buildPrescription({ ...input, dose: '0' })).toThrow(/dose/);
    expect(() => buildPrescription({ ...input, doseUnit: '' })).toThrow(/unit/);
    expect(() => buildPrescription({ ...input, timesPerDay: '1.5' })).toThrow(/Times per day/);
    expect(() => buildPrescription({ ...input, durationDays: '' })).toThrow(/Duration/);
  });
});

describe('appointmentActions', () => {
  it('offers confirm before booking and complete after', () => {
    expect(appointmentActions('proposed')).toEqual(['confirm', 'cancel']);
    expect(appointmentActions('booked')).toEqual(['complete', 'cancel']);
    expect(appointmentActions('arrived')).toEqual(['complete', 'cancel']);
  });
  it('offers nothing once final', () => {
    expect(appointmentActions('fulfilled')).toEqual([]);
    expect(appointmentActions('cancelled')).toEqual([]);
  });
});

describe('buildDispense', () => {
  const rx = { dispensed: 10, quantity: 30, unit: 'tablet' };
  const ok = { quantity: '10', unit: '', batch: ' B123 ', expiry: '2027-06-30' };
  const today = '2026-12-05';
  it('allows a partial fill and defaults the unit to the prescription', () => {
    expect(buildDispense(ok, rx, today)).toEqual({ quantity: 10, unit: 'tablet', batch: 'B123', expiry: '2027-06-30' });
    expect(buildDispense({ ...ok, unit: 'strip' }, rx, today).unit).toBe('strip');
  });
  it('refuses more than is left', () => {
    expect(() => buildDispense({ ...ok, quantity: '21' }, rx, today)).toThrow('Only 20 left to dispense');
    expect(buildDispense({ ...ok, quantity: '500' }, { ...rx, quantity: null }, today).quantity).toBe(500);
  });
  it('requires batch, a real expiry date, and stock that has not expired', () => {
    expect(() => buildDispense({ ...ok, batch: '' }, rx, today)).toThrow(/batch/);
    expect(() => buildDispense({ ...ok, expiry: '2027-02-30' }, rx, today)).toThrow(/YYYY-MM-DD/);
    expect(() => buildDispense({ ...ok, expiry: '2026-12-04' }, rx, today)).toThrow(/expired on 2026-12-04/);
    expect(buildDispense({ ...ok, expiry: today }, rx, today).expiry).toBe(today);
  });
  it('requires a unit when the prescription has none', () => {
    expect(() => buildDispense(ok, { ...rx, unit: null }, today)).toThrow(/unit/);
  });
});

describe('pharmacy helpers', () => {
  it('requires a hold reason', () => {
    expect(holdReason('  out of stock ')).toBe('out of stock');
    expect(() => holdReason('  ')).toThrow(/reason/);
  });
  it('gives today as YYYY-MM-DD', () => {
    expect(localToday(new Date('2026-01-07T10:00:00Z'))).toBe('2026-01-07');
  });
});
