// Typed wrappers around the Tauri shell's commands (see notes/desktop-contract.md).
// This is the only module that calls `invoke`: command names, argument names and
// shapes are fixed by the contract, so they are spelled out exactly once, here.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { publishStatus, requestStatusRefresh, setStatusSource } from './store';

// ---- Session -------------------------------------------------------------

export type ConnectionState = 'signedOut' | 'online' | 'syncing' | 'offline';
export type Mode = 'hospital' | 'pharmacy';

export interface User {
  reference: string;
  name: string;
  mode: Mode;
}

export interface Progress {
  done: number;
  total: number;
}

export interface Status {
  state: ConnectionState;
  /** RFC 3339: when the current state began. */
  since: string;
  server: string | null;
  user: User | null;
  progress: Progress | null;
  /** Writes waiting in the outbox. */
  pending: number;
  conflicts: number;
}

// ---- Patients and consent ------------------------------------------------

export type ConsentState = 'active' | 'pending' | 'none';

export interface PatientSummary {
  id: string;
  healthId: string | null;
  name: string;
  gender: string | null;
  birthDate: string | null;
  phone: string | null;
  consent: ConsentState;
}

export interface ConsentSummary {
  id: string;
  patientId: string;
  patientName: string | null;
  status: string;
  start: string | null;
  end: string | null;
}

// ---- Chart ---------------------------------------------------------------

export type VitalKind = 'bloodPressure' | 'glucose' | 'weight' | 'heartRate';

export interface VitalPoint {
  id: string;
  kind: VitalKind;
  time: string;
  value: number;
  /** Diastolic, for blood pressure only. */
  value2: number | null;
  unit: string;
  selfReported: boolean;
  status: string;
  /** Written while offline, still in the outbox. */
  pending: boolean;
}

export interface VitalSeries {
  kind: VitalKind;
  label: string;
  unit: string;
  points: VitalPoint[];
}

export interface Allergy {
  id: string;
  substance: string;
  criticality: string | null;
  reaction: string | null;
}

export interface Medication {
  id: string;
  medication: string;
  dosage: string | null;
  status: string;
  authoredOn: string | null;
}

export interface Problem {
  id: string;
  text: string;
  onset: string | null;
  status: string | null;
}

export interface Encounter {
  id: string;
  type: string;
  class: string | null;
  start: string | null;
  end: string | null;
  status: string;
}

export type LabFlag = 'H' | 'L' | 'N';

export interface LabResult {
  id: string;
  name: string;
  value: number | null;
  text: string | null;
  unit: string | null;
  low: number | null;
  high: number | null;
  flag: LabFlag | null;
  time: string | null;
}

export interface DocumentRef {
  id: string;
  title: string;
  date: string | null;
  contentType: string | null;
}

export interface Chart {
  patient: PatientSummary;
  stale: boolean;
  /** Stale since (RFC 3339), when `stale`. */
  since: string | null;
  allergies: Allergy[];
  medications: Medication[];
  problems: Problem[];
  encounters: Encounter[];
  vitals: VitalSeries[];
  labs: LabResult[];
  documents: DocumentRef[];
  /** Patient-reported points waiting for the doctor. */
  unverified: VitalPoint[];
}

export interface Written {
  resourceType: string;
  id: string;
  /** True when the write went to the outbox (offline). */
  queued: boolean;
}

export interface NewVital {
  kind: VitalKind;
  value: number;
  value2?: number;
  time?: string;
}

export interface NewPrescription {
  medication: string;
  dose: number;
  doseUnit: string;
  timesPerDay: number;
  durationDays: number;
  instructions?: string;
}

export interface Appointment {
  id: string;
  patientId: string | null;
  patientName: string | null;
  start: string | null;
  end: string | null;
  status: string;
  description: string | null;
}

export type AppointmentAction = 'confirm' | 'complete' | 'cancel';

// ---- Pharmacy ------------------------------------------------------------

export interface Prescription {
  id: string;
  patientId: string;
  patientName: string | null;
  healthId: string | null;
  medication: string;
  dosage: string | null;
  quantity: number | null;
  unit: string | null;
  dispensed: number;
  status: string;
  authoredOn: string | null;
  prescriber: string | null;
}

export interface NewDispense {
  quantity: number;
  unit: string;
  batch: string;
  /** YYYY-MM-DD */
  expiry: string;
}

export interface Dispense {
  id: string;
  prescriptionId: string | null;
  patientName: string | null;
  medication: string;
  quantity: number | null;
  unit: string | null;
  batch: string | null;
  expiry: string | null;
  when: string | null;
  status: string;
}

// ---- Conflicts -----------------------------------------------------------

export interface Conflict {
  seq: number;
  resourceType: string;
  id: string;
  mine: Record<string, unknown>;
  theirs: Record<string, unknown> | null;
}

export type Resolution = 'keepMine' | 'takeTheirs' | { merged: Record<string, unknown> };

// ---- Errors --------------------------------------------------------------

/** What a rejected command carries: DesktopError::code() and its Display text. */
export interface ApiError {
  code: string;
  message: string;
}

export function isApiError(e: unknown): e is ApiError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as ApiError).code === 'string' &&
    typeof (e as ApiError).message === 'string'
  );
}

/** A human-readable message for anything a command (or our own code) threw. */
export function errorMessage(e: unknown): string {
  if (isApiError(e)) return e.message || e.code;
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  return 'Unexpected error';
}

// ---- Plumbing ------------------------------------------------------------

/** A command whose answer is not a Status: refresh the status bar afterwards,
 *  because a write may have changed the outbox or the connection state. */
async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } finally {
    requestStatusRefresh();
  }
}

/** A command that answers with the new Status: publish it directly. */
async function callStatus(cmd: string, args?: Record<string, unknown>): Promise<Status> {
  try {
    const s = await invoke<Status>(cmd, args);
    publishStatus(s);
    return s;
  } catch (e) {
    requestStatusRefresh();
    throw e;
  }
}

// ---- Commands (one per contract entry) -----------------------------------

export const status = (): Promise<Status> => invoke<Status>('status');
/** Tells the shell the first screen is up (the end of a cold start, for its figure). */
export const uiReady = (): Promise<void> => invoke<void>('ui_ready');
setStatusSource(status);
export const lastServer = (): Promise<string | null> => invoke<string | null>('last_server');
export const signIn = (server: string): Promise<Status> => callStatus('sign_in', { server });
export const signOut = (): Promise<Status> => callStatus('sign_out');
export const syncNow = (): Promise<Status> => callStatus('sync_now');

export const findPatients = (query: string): Promise<PatientSummary[]> => call('find_patients', { query });
export const requestConsent = (patientId: string, days: number): Promise<ConsentSummary> =>
  call('request_consent', { patientId, days });
export const pendingConsents = (): Promise<ConsentSummary[]> => call('pending_consents');

export const openChart = (patientId: string): Promise<Chart> => call('open_chart', { patientId });
export const recordVital = (patientId: string, vital: NewVital): Promise<Written> =>
  call('record_vital', { patientId, vital });
export const startEncounter = (patientId: string, reason: string): Promise<Written> =>
  call('start_encounter', { patientId, reason });
export const addNote = (patientId: string, encounterId: string | null, text: string): Promise<Written> =>
  call('add_note', { patientId, encounterId, text });
export const prescribe = (patientId: string, rx: NewPrescription): Promise<Written> =>
  call('prescribe', { patientId, rx });
export const verifyObservation = (observationId: string, accept: boolean): Promise<Written> =>
  call('verify_observation', { observationId, accept });
export const appointmentsToday = (): Promise<Appointment[]> => call('appointments_today');
export const appointmentAction = (appointmentId: string, action: AppointmentAction): Promise<Written> =>
  call('appointment_action', { appointmentId, action });

export const pharmacyQueue = (): Promise<Prescription[]> => call('pharmacy_queue');
export const lookupPrescriptions = (query: string): Promise<Prescription[]> => call('lookup_prescriptions', { query });
export const dispense = (prescriptionId: string, d: NewDispense): Promise<Written> =>
  call('dispense', { prescriptionId, d });
export const setPrescriptionStatus = (
  prescriptionId: string,
  status: 'completed' | 'on-hold',
  reason: string | null,
): Promise<Written> => call('set_prescription_status', { prescriptionId, status, reason });
export const dispenseHistory = (): Promise<Dispense[]> => call('dispense_history');

export const conflicts = (): Promise<Conflict[]> => call('conflicts');
export const resolveConflict = (seq: number, resolution: Resolution): Promise<Status> =>
  callStatus('resolve_conflict', { seq, resolution });

/** The shell emits `status` on every change (connection, sync progress, outbox, sign-in). */
export function onStatus(handler: (s: Status) => void): Promise<UnlistenFn> {
  return listen<Status>('status', (event) => handler(event.payload));
}
