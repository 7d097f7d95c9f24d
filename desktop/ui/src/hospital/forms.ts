// The chart's write forms. They are built once per opened patient and survive chart
// reloads, so half-typed input in one form is not lost when another form saves.
import {
  addNote,
  prescribe,
  recordVital,
  startEncounter,
  type Encounter,
  type NewPrescription,
  type Written,
} from '../api';
import { field, h } from '../dom';
import { run } from '../errors';
import { formatDateTime, formatDosage, VITAL_KINDS } from '../format';
import { buildPrescription, buildVital } from './validate';

export interface ChartForms {
  el: HTMLElement;
  /** Refresh the note form's encounter choices after the chart reloads. */
  setEncounters: (encounters: Encounter[]) => void;
}

/** `saved` reloads the chart; it runs after every successful write. */
export function renderForms(patientId: string, saved: () => Promise<void>): ChartForms {
  const result = h('p', { id: 'write-result', role: 'status' });

  /** Submit handling shared by all forms: run the write, say whether it was saved or
   *  queued, clear what was typed (each form knows what to keep), reload the chart. */
  const submitting = (
    form: HTMLFormElement,
    button: HTMLButtonElement,
    what: string,
    write: () => Promise<Written>,
    clear: () => void,
  ): void => {
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      result.textContent = '';
      void run(button, async () => {
        const w = await write();
        result.textContent = w.queued ? `${what} queued — it will be sent when back online.` : `${what} saved.`;
        clear();
        await saved();
      });
    });
  };

  // ---- Record vital
  const kind = h(
    'select',
    { id: 'vital-kind', name: 'kind' },
    ...VITAL_KINDS.map((k) => h('option', { value: k.kind }, k.label)),
  );
  const value = h('input', { id: 'vital-value', name: 'value', inputmode: 'decimal', autocomplete: 'off' });
  const value2 = h('input', { id: 'vital-value2', name: 'value2', inputmode: 'decimal', autocomplete: 'off' });
  const value2Field = field('Diastolic (mmHg)', value2);
  const valueLabel = h('span', {}, '');
  const vitalSave = h('button', { id: 'vital-save', type: 'submit' }, 'Record');
  const syncKind = (): void => {
    const meta = VITAL_KINDS.find((k) => k.kind === kind.value) ?? VITAL_KINDS[0]!;
    const bp = meta.kind === 'bloodPressure';
    valueLabel.textContent = bp ? `Systolic (${meta.unit})` : `Value (${meta.unit})`;
    value2Field.hidden = !bp;
  };
  kind.addEventListener('change', syncKind);
  const vitalForm = h(
    'form',
    { id: 'vital-form' },
    h('h4', {}, 'Record vital'),
    field('Vital sign', kind),
    h('div', { class: 'grid' }, h('label', {}, valueLabel, value), value2Field),
    vitalSave,
  );
  syncKind();
  submitting(
    vitalForm,
    vitalSave,
    'Vital',
    // Read the select at submit time, not from cached state: a test driver may set it without a change event.
    () => recordVital(patientId, buildVital(kind.value, value.value, value2.value)),
    // Several readings of one kind in a row are common: keep the kind, clear the values.
    () => {
      value.value = '';
      value2.value = '';
    },
  );

  // ---- Start encounter
  const reason = h('input', { id: 'encounter-reason', name: 'reason', placeholder: 'e.g. Fever for 3 days' });
  const encounterSave = h('button', { id: 'encounter-start', type: 'submit' }, 'Start encounter');
  const encounterForm = h(
    'form',
    { id: 'encounter-form' },
    h('h4', {}, 'Start encounter'),
    field('Reason', reason),
    encounterSave,
  );
  submitting(
    encounterForm,
    encounterSave,
    'Encounter',
    () => {
      const r = reason.value.trim();
      if (!r) throw new Error('Enter the reason for the encounter.');
      return startEncounter(patientId, r);
    },
    () => encounterForm.reset(),
  );

  // ---- Note
  const noteEncounter = h('select', { id: 'note-encounter', name: 'encounter' });
  const noteText = h('textarea', { id: 'note-text', name: 'text', rows: 3 });
  const noteSave = h('button', { id: 'note-save', type: 'submit' }, 'Add note');
  const noteForm = h(
    'form',
    { id: 'note-form' },
    h('h4', {}, 'Note'),
    field('Encounter', noteEncounter),
    field('Text', noteText),
    noteSave,
  );
  submitting(
    noteForm,
    noteSave,
    'Note',
    () => {
      const t = noteText.value.trim();
      if (!t) throw new Error('The note is empty.');
      return addNote(patientId, noteEncounter.value || null, t);
    },
    () => {
      noteText.value = ''; // the encounter choice stays for the next note
    },
  );

  // ---- Prescribe
  const rx = {
    medication: h('input', { id: 'rx-medication', name: 'medication', placeholder: 'e.g. Paracetamol 500 mg tablet' }),
    dose: h('input', { id: 'rx-dose', name: 'dose', inputmode: 'decimal' }),
    doseUnit: h('input', { id: 'rx-dose-unit', name: 'doseUnit', placeholder: 'tablet' }),
    timesPerDay: h('input', { id: 'rx-times', name: 'timesPerDay', type: 'number', min: 1, max: 24 }),
    durationDays: h('input', { id: 'rx-days', name: 'durationDays', type: 'number', min: 1 }),
    instructions: h('input', { id: 'rx-instructions', name: 'instructions', placeholder: 'e.g. after food' }),
  };
  const rxPreview = h('small', { id: 'rx-preview' });
  const rxSave = h('button', { id: 'rx-save', type: 'submit' }, 'Prescribe');
  const readRx = (): NewPrescription =>
    buildPrescription({
      medication: rx.medication.value,
      dose: rx.dose.value,
      doseUnit: rx.doseUnit.value,
      timesPerDay: rx.timesPerDay.value,
      durationDays: rx.durationDays.value,
      instructions: rx.instructions.value,
    });
  const rxForm = h(
    'form',
    { id: 'rx-form' },
    h('h4', {}, 'Prescribe'),
    field('Medication', rx.medication),
    h('div', { class: 'grid' }, field('Dose', rx.dose), field('Unit', rx.doseUnit)),
    h('div', { class: 'grid' }, field('Times per day', rx.timesPerDay), field('Days', rx.durationDays)),
    field('Instructions', rx.instructions),
    rxPreview,
    rxSave,
  );
  // Show the dosage as it will read on the prescription while the form is being filled.
  const preview = (): void => {
    try {
      rxPreview.textContent = formatDosage(readRx());
    } catch {
      rxPreview.textContent = '';
    }
  };
  rxForm.addEventListener('input', preview);
  submitting(
    rxForm,
    rxSave,
    'Prescription',
    () => prescribe(patientId, readRx()),
    () => {
      rxForm.reset();
      preview();
    },
  );

  /** What the user picked (null: nothing yet). Kept across reloads while it exists;
   *  otherwise the note goes to the encounter in progress, the usual case. */
  let picked: string | null = null;
  noteEncounter.addEventListener('change', () => {
    picked = noteEncounter.value;
  });
  const setEncounters = (encounters: Encounter[]): void => {
    noteEncounter.replaceChildren(
      h('option', { value: '' }, 'No encounter'),
      ...encounters.map((e) => h('option', { value: e.id }, `${formatDateTime(e.start)} · ${e.type} · ${e.status}`)),
    );
    const stillThere = picked !== null && (picked === '' || encounters.some((e) => e.id === picked));
    noteEncounter.value = stillThere ? picked! : (encounters.find((e) => e.status === 'in-progress')?.id ?? '');
  };

  return {
    el: h(
      'section',
      { id: 'chart-forms', class: 'forms' },
      h('h3', {}, 'Record'),
      result,
      h('div', { class: 'forms-grid' }, h('div', {}, vitalForm, encounterForm), h('div', {}, noteForm, rxForm)),
    ),
    setEncounters,
  };
}
