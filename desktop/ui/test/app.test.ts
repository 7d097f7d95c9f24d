// @vitest-environment happy-dom
// The whole UI against a fake shell (Tauri's mockIPC): the same paths the WebDriver
// e2e test takes, by the same element ids, so a renamed id or a broken flow fails here first.
import { readFileSync } from 'node:fs';
import { URL as NodeURL } from 'node:url';
import { emit } from '@tauri-apps/api/event';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Chart, Conflict, Prescription, Status, User, VitalPoint } from '../src/api';
import { point, status } from './fixtures';

// node:url's URL: the global one here is happy-dom's, which readFileSync does not accept.
const html = readFileSync(new NodeURL('../index.html', import.meta.url), 'utf8');
const body = html.slice(html.indexOf('<body>') + 6, html.indexOf('</body>')).replace(/<script[\s\S]*?<\/script>/g, '');

const $ = <T extends HTMLElement = HTMLElement>(sel: string): T | null => document.querySelector<T>(sel);
const must = <T extends HTMLElement = HTMLElement>(sel: string): T => {
  const el = $<T>(sel);
  if (!el) throw new Error(`no ${sel}`);
  return el;
};
const type = (sel: string, text: string): void => {
  const el = must<HTMLInputElement>(sel);
  el.value = text;
  el.dispatchEvent(new Event('input', { bubbles: true }));
};
const appear = (sel: string): Promise<HTMLElement> => vi.waitFor(() => must(sel), { timeout: 2000 });

const hospitalUser: User = { reference: 'Practitioner/d1', name: 'Dr. Asha Rao', mode: 'hospital' };
const pharmacyUser: User = { reference: 'Practitioner/ph1', name: 'Ravi (Pharmacist)', mode: 'pharmacy' };

/** A small stateful stand-in for the Rust shell. */
class FakeShell {
  status: Status = status({ state: 'signedOut', user: null, server: null });
  calls: [string, Record<string, unknown>][] = [];
  userOnSignIn: User = hospitalUser;
  offline = false;
  bp: VitalPoint[] = [point({ id: 'o1', time: '2026-12-04T09:00:00Z', value: 118, value2: 76 })];
  rx: Prescription = {
    id: 'rx1',
    patientId: 'p1',
    patientName: 'Meera Iyer',
    healthId: '91-1234-5678-9012',
    medication: 'Amoxicillin 500 mg',
    dosage: '1 capsule three times a day for 5 days',
    quantity: 15,
    unit: 'capsule',
    dispensed: 0,
    status: 'active',
    authoredOn: '2026-12-05',
    prescriber: 'Dr. Asha Rao',
  };
  conflicts: Conflict[] = [
    {
      seq: 7,
      resourceType: 'Patient',
      id: 'p1',
      mine: { resourceType: 'Patient', id: 'p1', gender: 'female' },
      theirs: { resourceType: 'Patient', id: 'p1', gender: 'other' },
    },
  ];

  chart(): Chart {
    return {
      patient: {
        id: 'p1',
        healthId: '91-1234-5678-9012',
        name: 'Meera <b>Iyer</b>',
        gender: 'female',
        birthDate: '1984-03-09',
        phone: null,
        consent: 'active',
      },
      stale: this.offline,
      since: this.offline ? '2026-12-05T10:42:00Z' : null,
      allergies: [{ id: 'a1', substance: 'Penicillin', criticality: 'high', reaction: 'Rash' }],
      medications: [],
      problems: [{ id: 'c1', text: 'Type 2 diabetes', onset: '2019-01-01', status: 'active' }],
      encounters: [
        {
          id: 'e1',
          type: 'OPD consultation',
          class: 'AMB',
          start: '2026-12-01T09:00:00Z',
          end: null,
          status: 'in-progress',
        },
      ],
      vitals: [{ kind: 'bloodPressure', label: 'Blood pressure', unit: 'mmHg', points: this.bp }],
      labs: [
        {
          id: 'l1',
          name: 'HbA1c',
          value: 8.1,
          text: null,
          unit: '%',
          low: 4,
          high: 5.6,
          flag: null,
          time: '2026-12-01T09:00:00Z',
        },
        {
          id: 'l2',
          name: 'Potassium',
          value: 4.2,
          text: null,
          unit: 'mmol/L',
          low: 3.5,
          high: 5.1,
          flag: 'N',
          time: null,
        },
      ],
      documents: [],
      unverified: [point({ id: 'u1', kind: 'glucose', value: 180, value2: null, unit: 'mg/dL', selfReported: true })],
    };
  }

  handle(cmd: string, args: Record<string, unknown> = {}): unknown {
    this.calls.push([cmd, args]);
    const written = (resourceType: string) => ({ resourceType, id: 'new', queued: this.offline });
    switch (cmd) {
      case 'status':
        return this.status;
      case 'ui_ready':
        return null;
      case 'last_server':
        return 'http://10.0.0.5:8080/fhir';
      case 'sign_in':
        this.status = status({
          state: 'online',
          user: this.userOnSignIn,
          server: args.server as string,
          conflicts: this.conflicts.length,
        });
        return this.status;
      case 'sign_out':
        this.status = status({ state: 'signedOut', user: null });
        return this.status;
      case 'sync_now':
        return this.status;
      case 'find_patients':
        return [
          {
            id: 'p1',
            healthId: '91-1234-5678-9012',
            name: 'Meera Iyer',
            gender: 'female',
            birthDate: '1984-03-09',
            phone: null,
            consent: 'active',
          },
          {
            id: 'p2',
            healthId: null,
            name: 'Meera Nair',
            gender: 'female',
            birthDate: null,
            phone: '+91 98',
            consent: 'none',
          },
        ];
      case 'pending_consents':
        return [];
      case 'request_consent':
        return { id: 'c9', patientId: args.patientId, patientName: null, status: 'proposed', start: null, end: null };
      case 'appointments_today':
        return [];
      case 'open_chart':
        return this.chart();
      case 'record_vital': {
        const v = args.vital as { kind: 'bloodPressure'; value: number; value2: number };
        this.bp = [
          ...this.bp,
          point({ id: 'o2', time: '2026-12-05T10:42:00Z', value: v.value, value2: v.value2, pending: this.offline }),
        ];
        if (this.offline) this.status = { ...this.status, pending: this.status.pending + 1 };
        return written('Observation');
      }
      case 'add_note':
        return written('DocumentReference');
      case 'prescribe':
        return written('MedicationRequest');
      case 'verify_observation':
        return written('Observation');
      case 'pharmacy_queue':
        return [this.rx];
      case 'lookup_prescriptions':
        return args.query === 'rx1' ? [this.rx] : [];
      case 'dispense': {
        const d = args.d as { quantity: number };
        this.rx = { ...this.rx, dispensed: this.rx.dispensed + d.quantity };
        return written('MedicationDispense');
      }
      case 'set_prescription_status':
        return written('MedicationRequest');
      case 'dispense_history':
        return [];
      case 'conflicts':
        return this.conflicts;
      case 'resolve_conflict':
        this.conflicts = this.conflicts.filter((c) => c.seq !== args.seq);
        this.status = { ...this.status, conflicts: this.conflicts.length };
        return this.status;
      default:
        throw { code: 'Unknown', message: `unknown command ${cmd}` };
    }
  }

  last(cmd: string): Record<string, unknown> | undefined {
    const matching = this.calls.filter(([c]) => c === cmd);
    return matching[matching.length - 1]?.[1];
  }
}

let shell: FakeShell;

async function startApp(): Promise<void> {
  document.body.innerHTML = body;
  vi.resetModules();
  await import('../src/main');
  await appear('#status');
}

async function signInAs(user: User): Promise<void> {
  shell.userOnSignIn = user;
  await startApp();
  await appear('#server-url');
  await vi.waitFor(() => expect(must<HTMLInputElement>('#server-url').value).toBe('http://10.0.0.5:8080/fhir'));
  type('#server-url', 'http://127.0.0.1:8080/fhir');
  must('#sign-in').click();
  await vi.waitFor(() => expect(must('#status').textContent).toBe('Online'));
}

beforeEach(() => {
  shell = new FakeShell();
  mockIPC((cmd, args) => shell.handle(cmd, (args ?? {}) as Record<string, unknown>), { shouldMockEvents: true });
  // happy-dom has no canvas; Chart.js reports that on console.error and draws nothing.
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
});
afterEach(() => {
  clearMocks();
  vi.restoreAllMocks();
});

describe('sign-in and status bar', () => {
  it('prefills the last server, signs in, and follows status events', async () => {
    await signInAs(hospitalUser);
    expect(shell.last('sign_in')).toEqual({ server: 'http://127.0.0.1:8080/fhir' });
    expect(must('#user-name').textContent).toContain('Dr. Asha Rao');
    expect(must('#status-since').textContent).toMatch(/^since /);
    expect($('#patient-query')).not.toBeNull();

    await emit('status', status({ state: 'syncing', user: hospitalUser, progress: { done: 2, total: 5 } }));
    await vi.waitFor(() => expect(must('#status').textContent).toBe('Syncing 2/5'));
    await emit('status', status({ state: 'offline', user: hospitalUser, since: '2026-12-05T10:42:00Z', pending: 3 }));
    await vi.waitFor(() => expect(must('#status').textContent).toBe('Offline'));
    expect(must('#outbox').textContent).toBe('Outbox: 3');

    must('#sign-out').click();
    await appear('#server-url');
    expect(must('#status').textContent).toBe('Signed out');
  });

  it('shows a failed sign-in in #error and keeps the form', async () => {
    await startApp();
    await appear('#server-url');
    type('#server-url', 'ftp://nowhere');
    must('#sign-in').click();
    await vi.waitFor(() => expect(must('#error').textContent).toContain('http://'));
    expect(must('#error').hidden).toBe(false);
    expect(shell.last('sign_in')).toBeUndefined();
  });
});

describe('hospital', () => {
  it('searches, opens a chart and records a blood pressure that shows as queued offline', async () => {
    await signInAs(hospitalUser);
    type('#patient-query', 'Meera');
    must('#patient-search').click();
    await appear('.patient-result[data-id="p1"]');
    expect(document.querySelectorAll('.patient-result')).toHaveLength(2);
    // The consent request lives on the result without consent.
    expect($('.patient-result[data-id="p2"] .request-consent')).not.toBeNull();
    expect($('.patient-result[data-id="p1"] .request-consent')).toBeNull();

    must('.patient-result[data-id="p1"]').click();
    await appear('#chart-name');
    // Server text is text, never markup.
    expect(must('#chart-name').textContent).toBe('Meera <b>Iyer</b>');
    expect($('#chart-name b')).toBeNull();
    expect(must('#chart-health-id').textContent).toBe('91-1234-5678-9012');
    expect($('#stale-badge')).toBeNull();
    for (const kind of ['bloodPressure', 'glucose', 'weight', 'heartRate']) expect($(`#chart-${kind}`)).not.toBeNull();
    expect(must('#readings-bloodPressure').textContent).toBe('118/76 mmHg · 2026-12-04 09:00');
    // Out-of-range lab flagged, in-range not.
    expect(must('#labs tr[data-id="l1"] .lab-flag').textContent).toBe('H');
    expect(must('#labs tr[data-id="l1"] .lab-value').classList.contains('lab-high')).toBe(true);
    expect(must('#labs tr[data-id="l2"] .lab-flag').textContent).toBe('');

    shell.offline = true;
    must<HTMLSelectElement>('#vital-kind').value = 'bloodPressure';
    type('#vital-value', '120');
    type('#vital-value2', '80');
    must('#vital-save').click();
    await vi.waitFor(() => expect(document.querySelectorAll('#readings-bloodPressure li')).toHaveLength(2));
    expect(shell.last('record_vital')).toEqual({
      patientId: 'p1',
      vital: { kind: 'bloodPressure', value: 120, value2: 80 },
    });
    // Newest first.
    expect(must('#readings-bloodPressure li').textContent).toBe('120/80 mmHg · 2026-12-05 10:42 (queued)');
    expect(must('#stale-badge').textContent).toBe('stale since 2026-12-05 10:42');
    expect(must('#write-result').textContent).toContain('queued');
    expect(must<HTMLInputElement>('#vital-value').value).toBe('');
  });

  it('verifies a patient-reported point and reloads the chart', async () => {
    await signInAs(hospitalUser);
    type('#patient-query', 'Meera');
    must('#patient-search').click();
    (await appear('.patient-result[data-id="p1"]')).click();
    (await appear('#unverified li[data-id="u1"] .verify')).click();
    await vi.waitFor(() => expect(shell.last('verify_observation')).toEqual({ observationId: 'u1', accept: true }));
    await vi.waitFor(() => expect(shell.calls.filter(([c]) => c === 'open_chart')).toHaveLength(2));
  });

  it('adds a note to the encounter in progress and prescribes with the contract shape', async () => {
    await signInAs(hospitalUser);
    type('#patient-query', 'Meera');
    must('#patient-search').click();
    (await appear('.patient-result[data-id="p1"]')).click();
    await appear('#chart-name');
    expect(must<HTMLSelectElement>('#note-encounter').value).toBe('e1');
    type('#note-text', 'Feels better.');
    must('#note-save').click();
    await vi.waitFor(() =>
      expect(shell.last('add_note')).toEqual({ patientId: 'p1', encounterId: 'e1', text: 'Feels better.' }),
    );
    await vi.waitFor(() => expect(must<HTMLTextAreaElement>('#note-text').value).toBe(''));

    type('#rx-medication', 'Metformin 500 mg tablet');
    type('#rx-dose', '1');
    type('#rx-dose-unit', 'tablet');
    type('#rx-times', '2');
    type('#rx-days', '30');
    expect(must('#rx-preview').textContent).toBe('1 tablet, twice a day for 30 days');
    must('#rx-save').click();
    await vi.waitFor(() =>
      expect(shell.last('prescribe')).toEqual({
        patientId: 'p1',
        rx: { medication: 'Metformin 500 mg tablet', dose: 1, doseUnit: 'tablet', timesPerDay: 2, durationDays: 30 },
      }),
    );
    await vi.waitFor(() => expect(must('#write-result').textContent).toBe('Prescription saved.'));
  });

  it('rejects an incomplete blood pressure before calling the shell', async () => {
    await signInAs(hospitalUser);
    type('#patient-query', 'Meera');
    must('#patient-search').click();
    (await appear('.patient-result[data-id="p1"]')).click();
    await appear('#vital-save');
    type('#vital-value', '120');
    must('#vital-save').click();
    await vi.waitFor(() => expect(must('#error').textContent).toContain('diastolic'));
    expect(shell.last('record_vital')).toBeUndefined();
  });
});

describe('pharmacy', () => {
  it('dispenses part of a prescription and shows dispensed/quantity', async () => {
    await signInAs(pharmacyUser);
    (await appear('#queue .queue-row[data-id="rx1"]')).click();
    await appear('#dispense-quantity');
    type('#dispense-quantity', '5');
    type('#dispense-unit', '');
    type('#dispense-batch', 'B-2291');
    type('#dispense-expiry', '2099-01-31');
    must('#dispense-save').click();
    await vi.waitFor(() => expect(must('.queue-row[data-id="rx1"] .dispensed').textContent).toBe('5/15 capsule'));
    expect(shell.last('dispense')).toEqual({
      prescriptionId: 'rx1',
      d: { quantity: 5, unit: 'capsule', batch: 'B-2291', expiry: '2099-01-31' },
    });
  });

  it('needs a reason to put a prescription on hold', async () => {
    await signInAs(pharmacyUser);
    (await appear('.queue-row[data-id="rx1"]')).click();
    (await appear('#rx-hold')).click();
    await vi.waitFor(() => expect(must('#error').textContent).toContain('reason'));
    type('#hold-reason', 'Out of stock');
    must('#rx-hold').click();
    await vi.waitFor(() =>
      expect(shell.last('set_prescription_status')).toEqual({
        prescriptionId: 'rx1',
        status: 'on-hold',
        reason: 'Out of stock',
      }),
    );
  });
});

describe('conflicts', () => {
  it('shows both versions and sends a hand-merged one', async () => {
    await signInAs(hospitalUser);
    expect(must('#conflicts').textContent).toBe('1 conflict');
    must('#conflicts').click();
    await appear('.conflict[data-seq="7"]');
    expect(JSON.parse(must('.conflict .theirs').textContent!)).toEqual({
      resourceType: 'Patient',
      id: 'p1',
      gender: 'other',
    });
    must('.conflict .merge-by-hand').click();
    const text = must<HTMLTextAreaElement>('.conflict textarea.merged');
    expect(JSON.parse(text.value)).toEqual({ resourceType: 'Patient', id: 'p1', gender: 'female' });
    text.value = '{"resourceType":"Patient","id":"p1","gender":"unknown"}';
    must('.conflict .send-merged').click();
    await vi.waitFor(() =>
      expect(shell.last('resolve_conflict')).toEqual({
        seq: 7,
        resolution: { merged: { resourceType: 'Patient', id: 'p1', gender: 'unknown' } },
      }),
    );
    await vi.waitFor(() => expect(must('#conflicts').textContent).toBe('0 conflicts'));
    await appear('#conflicts-dialog .empty');
  });
});
