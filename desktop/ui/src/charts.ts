// Chart.js rendering of the vital series. Only the pieces a line chart needs are
// registered (Chart.js 4 is tree-shakeable; `chart.js/auto` would pull in everything).
import {
  CategoryScale,
  Chart,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  PointElement,
  Tooltip,
  type ScriptableContext,
} from 'chart.js';
import type { SeriesData } from './series';

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Tooltip, Legend);

// Systolic and the single-line series share the first colour; diastolic the second.
const COLORS = ['#d93526', '#0172ad'];

/** Draw (or redraw) one series on its canvas. A canvas holds at most one Chart, so
 *  any previous one is destroyed first; otherwise Chart.js throws "Canvas is already in use". */
export function drawSeries(canvas: HTMLCanvasElement, data: SeriesData, unit: string): Chart<'line'> {
  Chart.getChart(canvas)?.destroy();
  const isPending = (ctx: ScriptableContext<'line'>): boolean => data.pending[ctx.dataIndex] ?? false;
  const isSelf = (ctx: ScriptableContext<'line'>): boolean => data.selfReported[ctx.dataIndex] ?? false;

  return new Chart(canvas, {
    type: 'line',
    data: {
      labels: data.labels,
      datasets: data.datasets.map((d, i) => {
        const color = COLORS[i % COLORS.length]!;
        return {
          label: d.label,
          data: d.data,
          borderColor: color,
          // Queued (not yet on the server) points are hollow; patient-reported ones are triangles.
          pointBackgroundColor: (ctx: ScriptableContext<'line'>) => (isPending(ctx) ? '#ffffff' : color),
          pointStyle: (ctx: ScriptableContext<'line'>) => (isSelf(ctx) ? 'triangle' : 'circle'),
          pointRadius: 4,
          tension: 0.2,
          spanGaps: true,
        };
      }),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      // Charts are rebuilt after every write; animating each rebuild is just noise.
      animation: false,
      scales: {
        y: { title: { display: !!unit, text: unit } },
        x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 6 } },
      },
      plugins: {
        legend: { display: data.datasets.length > 1 },
        tooltip: {
          callbacks: {
            afterLabel: (item) => (data.pending[item.dataIndex] ? 'queued, not yet sent' : ''),
          },
        },
      },
    },
  });
}

/** Free the charts under `root` before its DOM is thrown away (they hold resize observers). */
export function destroyCharts(root: ParentNode): void {
  root.querySelectorAll('canvas').forEach((c) => Chart.getChart(c)?.destroy());
}
