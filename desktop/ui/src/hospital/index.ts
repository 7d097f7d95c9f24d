// Hospital mode: the home screen (search, pending consents, today's appointments) and,
// once a patient is picked, their chart. The home stays in the DOM while a chart is
// open so "Back" returns to the same search results.
import { h, type ModeView } from '../dom';
import { cameBackOnline } from '../format';
import { subscribeStatus } from '../store';
import { renderAppointments } from './appointments';
import { renderChartView, type ChartView } from './chart';
import { renderPendingConsents } from './consents';
import { renderSearch } from './search';

export function renderHospital(): ModeView {
  let chart: ChartView | null = null;
  const pending = renderPendingConsents();
  const appointments = renderAppointments((id) => openPatient(id));
  const search = renderSearch({ openChart: (id) => openPatient(id), consentRequested: () => void pending.reload() });
  const home = h('div', { id: 'hospital-home' }, search, h('div', { class: 'grid' }, appointments.el, pending.el));
  const chartSlot = h('div', { id: 'chart-slot' });
  const el = h('div', { id: 'hospital' }, home, chartSlot);

  const closeChart = (): void => {
    chart?.dispose();
    chart = null;
    chartSlot.replaceChildren();
    home.hidden = false;
  };
  const openPatient = (patientId: string): void => {
    closeChart();
    chart = renderChartView(patientId, closeChart);
    chartSlot.append(chart.el);
    home.hidden = true;
    window.scrollTo(0, 0);
  };

  const reloadHome = (): void => {
    void pending.reload();
    void appointments.reload();
  };
  reloadHome();

  const unsubscribe = subscribeStatus((s, previous) => {
    if (!cameBackOnline(s, previous)) return;
    // open_chart answers from the cache at once; when the server is back, read again
    // so a stale chart (and any queued points that have now been sent) catches up.
    if (chart) void chart.reload();
    reloadHome();
  });

  return {
    el,
    dispose: () => {
      unsubscribe();
      closeChart();
    },
  };
}
