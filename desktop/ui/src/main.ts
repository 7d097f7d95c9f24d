// Entry point: the status bar, the #error banner, and one screen chosen from the
// shell's Status (signed out → sign-in; signed in → the user's mode).
import '@picocss/pico/css/pico.min.css';
import './styles.css';
import { onStatus, status, uiReady, type Status } from './api';
import { byId, fill, h, type ModeView } from './dom';
import { showError } from './errors';
import { renderHospital } from './hospital';
import { renderPharmacy } from './pharmacy';
import { renderSignIn } from './signin';
import { publishStatus, screenKey, subscribeStatus } from './store';
import { mountStatusBar } from './status';

let shownKey = '';
let mode: ModeView | null = null;

function show(s: Status): void {
  const key = screenKey(s);
  if (key === shownKey) return;
  shownKey = key;
  mode?.dispose();
  mode = null;
  const view = byId('view');
  if (key === 'sign-in') {
    fill(view, renderSignIn());
    return;
  }
  mode = s.user!.mode === 'pharmacy' ? renderPharmacy() : renderHospital();
  fill(view, mode.el);
}

async function start(): Promise<void> {
  mountStatusBar();
  subscribeStatus(show);
  fill(byId('view'), h('p', { 'aria-busy': 'true' }, 'Starting…'));
  try {
    // Listen before reading, so a change between the two is not missed.
    await onStatus(publishStatus);
    publishStatus(await status());
    // After the first screen is in the page: the cold start ends when people can use it.
    requestAnimationFrame(() => void uiReady());
  } catch (e) {
    // Without the shell (e.g. `vite` in a plain browser) nothing works; say so.
    fill(byId('view'), renderSignIn());
    showError(e);
  }
}

void start();
