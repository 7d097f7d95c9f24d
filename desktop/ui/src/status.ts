// The status bar: always on screen. Built once and then updated in place, so buttons
// keep their identity (and focus) while status events stream in during a sync.
import { signOut, syncNow, type Status } from './api';
import { openConflicts } from './conflicts';
import { byId, h } from './dom';
import { run } from './errors';
import { countText, sinceText, statusLabel } from './format';
import { currentStatus, subscribeStatus } from './store';

interface Parts {
  state: HTMLElement;
  since: HTMLElement;
  progress: HTMLProgressElement;
  outbox: HTMLElement;
  conflicts: HTMLButtonElement;
  user: HTMLElement;
  syncNow: HTMLButtonElement;
  signOut: HTMLButtonElement;
  signedInOnly: HTMLElement[];
}

export function mountStatusBar(): void {
  const root = byId('status-bar');
  const syncBtn = h('button', { id: 'sync-now', class: 'secondary' }, 'Sync now');
  const signOutBtn = h('button', { id: 'sign-out', class: 'secondary outline' }, 'Sign out');
  const conflictsBtn = h('button', { id: 'conflicts', class: 'outline contrast', type: 'button' });
  const parts: Parts = {
    state: h('strong', { id: 'status' }, 'Connecting…'),
    since: h('small', { id: 'status-since' }),
    progress: h('progress', { id: 'sync-progress' }),
    outbox: h('span', { id: 'outbox' }),
    conflicts: conflictsBtn,
    user: h('span', { id: 'user-name' }),
    syncNow: syncBtn,
    signOut: signOutBtn,
    signedInOnly: [],
  };
  const left = h('ul', {}, h('li', {}, parts.state, ' ', parts.since), h('li', {}, parts.progress));
  const counts = h('li', {}, parts.outbox, ' ', conflictsBtn);
  const right = h('ul', {}, h('li', {}, parts.user), h('li', {}, syncBtn), h('li', {}, signOutBtn));
  parts.signedInOnly = [counts, right];
  left.append(counts);
  root.replaceChildren(h('nav', {}, left, right));

  // run() re-enables its button when done; render again so "Sync now" stays
  // disabled if the shell is still syncing.
  const rerender = (): void => {
    const s = currentStatus();
    if (s) render(parts, s);
  };
  syncBtn.addEventListener('click', () => void run(syncBtn, syncNow).then(rerender));
  signOutBtn.addEventListener('click', () => void run(signOutBtn, signOut).then(rerender));
  conflictsBtn.addEventListener('click', () => void openConflicts());

  subscribeStatus((s) => render(parts, s));
  // "since 10:42" becomes "since 2026-12-04 10:42" after midnight; a minute tick keeps it true.
  window.setInterval(rerender, 60_000);
}

function render(p: Parts, s: Status): void {
  const signedIn = s.state !== 'signedOut';
  p.state.textContent = statusLabel(s);
  p.state.className = `state-${s.state}`;
  p.since.textContent = signedIn ? sinceText(s.since, new Date()) : '';

  // Progress bar only while syncing with known totals.
  const prog = s.state === 'syncing' ? s.progress : null;
  p.progress.hidden = !prog;
  if (prog) {
    p.progress.max = Math.max(prog.total, 1);
    p.progress.value = Math.min(prog.done, p.progress.max);
  }

  for (const el of p.signedInOnly) el.hidden = !signedIn;
  p.outbox.textContent = `Outbox: ${s.pending}`;
  p.outbox.title = s.pending ? `${countText(s.pending, 'change')} waiting to be sent` : 'Nothing waiting to be sent';
  p.conflicts.textContent = countText(s.conflicts, 'conflict');
  p.conflicts.classList.toggle('has-conflicts', s.conflicts > 0);
  p.user.textContent = s.user ? `${s.user.name} (${s.user.mode})` : '';
  // Syncing again while a sync runs would only queue behind it.
  p.syncNow.disabled = s.state === 'syncing';
}
