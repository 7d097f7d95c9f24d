// Today's appointments with the actions their status allows.
import { appointmentAction, appointmentsToday, type Appointment, type AppointmentAction } from '../api';
import { emptyNote, fill, h, section } from '../dom';
import { run, showError } from '../errors';
import { formatTimeOrDateTime } from '../format';
import { appointmentActions } from './validate';

const ACTION_LABEL: Record<AppointmentAction, string> = {
  confirm: 'Confirm',
  complete: 'Complete',
  cancel: 'Cancel',
};

export interface Appointments {
  el: HTMLElement;
  reload: () => Promise<void>;
}

export function renderAppointments(openChart: (patientId: string) => void): Appointments {
  const body = h('tbody');
  const table = h(
    'table',
    { id: 'appointments', class: 'striped' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'Time'),
        h('th', {}, 'Patient'),
        h('th', {}, 'Reason'),
        h('th', {}, 'Status'),
        h('th', {}, ''),
      ),
    ),
    body,
  );
  const empty = emptyNote('No appointments today.');

  const row = (a: Appointment): HTMLTableRowElement => {
    const now = new Date();
    const time = a.start
      ? formatTimeOrDateTime(a.start, now) + (a.end ? `–${formatTimeOrDateTime(a.end, now)}` : '')
      : '—';
    const who = a.patientId
      ? h(
          'a',
          {
            href: '#',
            class: 'open-chart',
            onclick: (ev: Event) => {
              ev.preventDefault();
              openChart(a.patientId!);
            },
          },
          a.patientName ?? a.patientId,
        )
      : (a.patientName ?? '—');
    const buttons = appointmentActions(a.status).map((action) => {
      const b = h(
        'button',
        { class: `appt-${action} ${action === 'cancel' ? 'secondary outline' : ''}`, type: 'button' },
        ACTION_LABEL[action],
      );
      b.addEventListener(
        'click',
        () =>
          void run(b, async () => {
            await appointmentAction(a.id, action);
            await reload();
          }),
      );
      return b;
    });
    return h(
      'tr',
      { class: 'appointment', dataset: { id: a.id } },
      h('td', {}, time),
      h('td', {}, who),
      h('td', {}, a.description ?? ''),
      h('td', { class: 'appt-status' }, a.status),
      h('td', { class: 'actions' }, ...buttons),
    );
  };

  const reload = async (): Promise<void> => {
    try {
      const list = await appointmentsToday();
      fill(body, ...list.map(row));
      table.hidden = list.length === 0;
      empty.hidden = list.length > 0;
    } catch (e) {
      showError(e);
    }
  };

  return { el: section("Today's appointments", table, empty), reload };
}
