// Turning pharmacy form input into command arguments (pure, tested).
import type { NewDispense, Prescription } from '../api';
import { formatNumber, isIsoDate, parseNumber, remainingQuantity } from '../format';

export interface DispenseInput {
  quantity: string;
  unit: string;
  batch: string;
  expiry: string;
}

/** `today` is YYYY-MM-DD; expired stock must not be handed out. An empty unit
 *  falls back to the prescription's unit (shown as the field's placeholder). */
export function buildDispense(
  i: DispenseInput,
  rx: Pick<Prescription, 'dispensed' | 'quantity' | 'unit'>,
  today: string,
): NewDispense {
  const quantity = parseNumber(i.quantity);
  if (quantity === null || quantity <= 0) throw new Error('Enter the quantity handed out.');
  const left = remainingQuantity(rx);
  if (left !== null && quantity > left) {
    throw new Error(`Only ${formatNumber(left)} left to dispense on this prescription.`);
  }
  const unit = i.unit.trim() || (rx.unit ?? '');
  if (!unit) throw new Error('Enter the unit (e.g. tablet).');
  const batch = i.batch.trim();
  if (!batch) throw new Error('Enter the batch number.');
  const expiry = i.expiry.trim();
  if (!isIsoDate(expiry)) throw new Error('Enter the expiry date as YYYY-MM-DD.');
  if (expiry < today) throw new Error(`This batch expired on ${expiry}.`);
  return { quantity, unit, batch, expiry };
}

/** A hold needs a reason the prescriber can read. */
export function holdReason(text: string): string {
  const r = text.trim();
  if (!r) throw new Error('Give a reason for putting the prescription on hold.');
  return r;
}

/** Today as YYYY-MM-DD in local time (what the pharmacist calls today). */
export function localToday(now: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}`;
}
