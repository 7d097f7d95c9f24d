// Pure display logic: no DOM, no Tauri. Everything here is unit-tested (test/format.test.ts).
import type { LabFlag, LabResult, NewPrescription, Prescription, Status, VitalKind, VitalPoint } from './api';

export const EMPTY = '—';

/** The four vital series, in the order the chart view shows them. */
export const VITAL_KINDS: readonly { kind: VitalKind; label: string; unit: string }[] = [
  { kind: 'bloodPressure', label: 'Blood pressure', unit: 'mmHg' },
  { kind: 'glucose', label: 'Glucose', unit: 'mg/dL' },
  { kind: 'weight', label: 'Weight', unit: 'kg' },
  { kind: 'heartRate', label: 'Heart rate', unit: '/min' },
];

export function isVitalKind(s: string): s is VitalKind {
  return VITAL_KINDS.some((k) => k.kind === s);
}

// ---- Numbers -------------------------------------------------------------

/** Up to two decimals, without trailing zeros: 72 → "72", 5.60 → "5.6". */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return EMPTY;
  return String(Math.round(n * 100) / 100);
}

/** Parse what a user typed into a number field. Accepts a decimal comma, because
 *  people type "5,6" for glucose; empty or junk gives null (the form reports it). */
export function parseNumber(input: string): number | null {
  const t = input.trim().replace(',', '.');
  if (t === '') return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** A positive whole number (times per day, duration, consent days), else null. */
export function parsePositiveInt(input: string): number | null {
  const n = parseNumber(input);
  return n !== null && Number.isInteger(n) && n > 0 ? n : null;
}

// ---- Dates and times -----------------------------------------------------

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

const pad2 = (n: number): string => String(n).padStart(2, '0');

function localDate(d: Date): string {
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
}

function localTime(d: Date): string {
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

function parseInstant(s: string): Date | null {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "2026-12-05 10:42" in the user's local zone. Date-only values (birth dates) are
 *  shown as they are, since parsing them as UTC midnight would shift them by a day
 *  west of Greenwich. Unparsable text is shown raw rather than hidden. */
export function formatDateTime(s: string | null | undefined): string {
  if (!s) return EMPTY;
  if (DATE_ONLY.test(s)) return s;
  const d = parseInstant(s);
  return d ? `${localDate(d)} ${localTime(d)}` : s;
}

/** "2026-12-05" for a date or an instant. */
export function formatDate(s: string | null | undefined): string {
  if (!s) return EMPTY;
  if (DATE_ONLY.test(s)) return s;
  const d = parseInstant(s);
  return d ? localDate(d) : s;
}

/** "10:42" when `s` falls on the same local day as `now`, else "2026-12-04 10:42":
 *  a bare time from yesterday would read as today. */
export function formatTimeOrDateTime(s: string, now: Date): string {
  const d = parseInstant(s);
  if (!d) return s;
  return localDate(d) === localDate(now) ? localTime(d) : `${localDate(d)} ${localTime(d)}`;
}

/** True for a real calendar date written YYYY-MM-DD (2027-02-30 is rejected). */
export function isIsoDate(s: string): boolean {
  if (!DATE_ONLY.test(s)) return false;
  const [y, m, d] = s.split('-').map(Number) as [number, number, number];
  const dt = new Date(Date.UTC(y, m - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d;
}

// ---- Connection status ---------------------------------------------------

/** The word the status bar leads with. The e2e test looks for Online / Syncing / Offline. */
export function statusLabel(s: Status): string {
  switch (s.state) {
    case 'online':
      return 'Online';
    case 'syncing':
      return s.progress ? `Syncing ${s.progress.done}/${s.progress.total}` : 'Syncing';
    case 'offline':
      return 'Offline';
    case 'signedOut':
      return 'Signed out';
  }
}

/** "since 10:42" (or with the date when not today); empty when the shell sent no time. */
export function sinceText(since: string | null | undefined, now: Date): string {
  return since ? `since ${formatTimeOrDateTime(since, now)}` : '';
}

/** "Offline since 10:42". */
export function statusText(s: Status, now: Date): string {
  const since = sinceText(s.since, now);
  return since ? `${statusLabel(s)} ${since}` : statusLabel(s);
}

/** Whether a status change means the server is reachable again or a sync just
 *  finished: the moment screens answered from the cache should be read again. */
export function cameBackOnline(s: Status, previous: Status | null): boolean {
  return previous !== null && previous.state !== 'online' && previous.state !== 'signedOut' && s.state === 'online';
}

/** "3 pending" / "1 conflict": counts are shown only when there is something to see. */
export function countText(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

// ---- Vitals --------------------------------------------------------------

type VitalValue = Pick<VitalPoint, 'kind' | 'value' | 'value2' | 'unit'>;

/** "120/80 mmHg", "98 mg/dL", "72.5 kg". A blood pressure without its diastolic
 *  shows the systolic alone rather than "120/null". */
export function formatVital(p: VitalValue): string {
  const unit = p.unit ? ` ${p.unit}` : '';
  if (p.kind === 'bloodPressure' && p.value2 !== null) {
    return `${formatNumber(p.value)}/${formatNumber(p.value2)}${unit}`;
  }
  return `${formatNumber(p.value)}${unit}`;
}

/** One line of the readings list: "120/80 mmHg · 2026-12-05 10:42 (queued)". */
export function formatReading(p: VitalPoint): string {
  return `${formatVital(p)} · ${formatDateTime(p.time)}${p.pending ? ' (queued)' : ''}`;
}

// ---- Medication ----------------------------------------------------------

function timesPerDayText(n: number): string {
  if (n === 1) return 'once a day';
  if (n === 2) return 'twice a day';
  return `${formatNumber(n)} times a day`;
}

/** "500 mg, twice a day for 5 days — after food": what the prescriber is about to send. */
export function formatDosage(
  rx: Pick<NewPrescription, 'dose' | 'doseUnit' | 'timesPerDay' | 'durationDays' | 'instructions'>,
): string {
  const unit = rx.doseUnit.trim() ? ` ${rx.doseUnit.trim()}` : '';
  const days = rx.durationDays === 1 ? '1 day' : `${formatNumber(rx.durationDays)} days`;
  const base = `${formatNumber(rx.dose)}${unit}, ${timesPerDayText(rx.timesPerDay)} for ${days}`;
  const notes = rx.instructions?.trim();
  return notes ? `${base} — ${notes}` : base;
}

/** Partial fills: "10/30 tablet"; "10 dispensed" when the prescription states no quantity. */
export function formatDispensed(rx: Pick<Prescription, 'dispensed' | 'quantity' | 'unit'>): string {
  const unit = rx.unit ? ` ${rx.unit}` : '';
  if (rx.quantity === null) return `${formatNumber(rx.dispensed)}${unit} dispensed`;
  return `${formatNumber(rx.dispensed)}/${formatNumber(rx.quantity)}${unit}`;
}

/** What is still to hand out, never negative; null when the quantity is unknown. */
export function remainingQuantity(rx: Pick<Prescription, 'dispensed' | 'quantity'>): number | null {
  return rx.quantity === null ? null : Math.max(0, rx.quantity - rx.dispensed);
}

// ---- Labs ----------------------------------------------------------------

/** The flag to display: the server's interpretation when it gave one, otherwise
 *  computed from the reference range. "N" and in-range values show no flag. */
export function labFlag(lab: Pick<LabResult, 'flag' | 'value' | 'low' | 'high'>): 'H' | 'L' | null {
  const given: LabFlag | null = lab.flag;
  if (given === 'H' || given === 'L') return given;
  if (given === 'N' || lab.value === null) return null;
  if (lab.high !== null && lab.value > lab.high) return 'H';
  if (lab.low !== null && lab.value < lab.low) return 'L';
  return null;
}

/** CSS class for a flagged value cell. */
export function labFlagClass(flag: 'H' | 'L' | null): string {
  return flag === 'H' ? 'lab-high' : flag === 'L' ? 'lab-low' : '';
}

/** "3.5–5.1 mmol/L", "≥ 40 mg/dL", "≤ 200 mg/dL", or a dash. */
export function formatRange(lab: Pick<LabResult, 'low' | 'high' | 'unit'>): string {
  const unit = lab.unit ? ` ${lab.unit}` : '';
  if (lab.low !== null && lab.high !== null) return `${formatNumber(lab.low)}–${formatNumber(lab.high)}${unit}`;
  if (lab.low !== null) return `≥ ${formatNumber(lab.low)}${unit}`;
  if (lab.high !== null) return `≤ ${formatNumber(lab.high)}${unit}`;
  return EMPTY;
}

/** The value cell: the number with its unit, or the result's text (e.g. "Positive"). */
export function formatLabValue(lab: Pick<LabResult, 'value' | 'text' | 'unit'>): string {
  if (lab.value !== null) return `${formatNumber(lab.value)}${lab.unit ? ` ${lab.unit}` : ''}`;
  return lab.text ?? EMPTY;
}

// ---- Patients ------------------------------------------------------------

/** "female · 1980-04-02 · +91 98xxxxxx": the facts that tell two namesakes apart. */
export function patientDetails(p: { gender: string | null; birthDate: string | null; phone?: string | null }): string {
  return [p.gender, p.birthDate ? formatDate(p.birthDate) : null, p.phone ?? null]
    .filter((x): x is string => !!x)
    .join(' · ');
}

export function consentLabel(c: 'active' | 'pending' | 'none'): string {
  return c === 'active' ? 'Consent active' : c === 'pending' ? 'Consent pending' : 'No consent';
}
