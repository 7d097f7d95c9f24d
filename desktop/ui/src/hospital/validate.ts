// Turning hospital form input into command arguments. Pure, so the rules are tested;
// the thrown messages are shown to the user as they are.
import type { NewPrescription, NewVital, VitalKind } from '../api';
import { isVitalKind, parseNumber, parsePositiveInt } from '../format';

export function buildVital(kind: string, valueText: string, value2Text: string): NewVital {
  if (!isVitalKind(kind)) throw new Error('Choose which vital sign to record.');
  const k: VitalKind = kind;
  const value = parseNumber(valueText);
  if (value === null || value <= 0) {
    throw new Error(
      k === 'bloodPressure' ? 'Enter the systolic pressure as a number.' : 'Enter the value as a number.',
    );
  }
  if (k !== 'bloodPressure') return { kind: k, value };
  const value2 = parseNumber(value2Text);
  if (value2 === null || value2 <= 0) throw new Error('Enter the diastolic pressure as a number.');
  // Swapped fields are the common slip; the server would store them as given.
  if (value2 >= value) throw new Error('Diastolic must be lower than systolic.');
  return { kind: k, value, value2 };
}

export interface PrescriptionInput {
  medication: string;
  dose: string;
  doseUnit: string;
  timesPerDay: string;
  durationDays: string;
  instructions: string;
}

export function buildPrescription(i: PrescriptionInput): NewPrescription {
  const medication = i.medication.trim();
  if (!medication) throw new Error('Enter the medication.');
  const dose = parseNumber(i.dose);
  if (dose === null || dose <= 0) throw new Error('Enter the dose as a number.');
  const doseUnit = i.doseUnit.trim();
  if (!doseUnit) throw new Error('Enter the dose unit (e.g. mg, tablet).');
  const timesPerDay = parsePositiveInt(i.timesPerDay);
  if (timesPerDay === null) throw new Error('Times per day must be a whole number of at least 1.');
  const durationDays = parsePositiveInt(i.durationDays);
  if (durationDays === null) throw new Error('Duration must be a whole number of days, at least 1.');
  const instructions = i.instructions.trim();
  // The contract marks instructions optional: leave the key out rather than send "".
  return instructions
    ? { medication, dose, doseUnit, timesPerDay, durationDays, instructions }
    : { medication, dose, doseUnit, timesPerDay, durationDays };
}

/** Which actions make sense for an appointment in this FHIR status. Final states
 *  offer none; confirming only applies before the appointment is booked. */
export function appointmentActions(status: string): ('confirm' | 'complete' | 'cancel')[] {
  switch (status) {
    case 'fulfilled':
    case 'cancelled':
    case 'noshow':
    case 'entered-in-error':
      return [];
    case 'proposed':
    case 'pending':
    case 'waitlist':
      return ['confirm', 'cancel'];
    default: // booked, arrived, checked-in, or anything newer
      return ['complete', 'cancel'];
  }
}
