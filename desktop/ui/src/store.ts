// The one shared piece of state: the shell's latest Status. It arrives three ways
// (the `status` event, commands that answer with a Status, and a refresh after every
// other command), and every view that cares subscribes here instead of listening itself.
import type { Status } from './api';

type Listener = (s: Status, previous: Status | null) => void;

let current: Status | null = null;
const listeners = new Set<Listener>();
let source: (() => Promise<Status>) | null = null;
let refreshing = false;
let refreshAgain = false;

export function currentStatus(): Status | null {
  return current;
}

export function publishStatus(s: Status): void {
  const previous = current;
  current = s;
  for (const l of listeners) l(s, previous);
}

/** Returns the unsubscribe function. */
export function subscribeStatus(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Where a refresh reads the status from (the `status` command; set once at start-up). */
export function setStatusSource(fn: () => Promise<Status>): void {
  source = fn;
}

/** Re-read the status soon. Bursts of commands collapse into at most one call in
 *  flight plus one queued, so a busy screen does not flood the shell. */
export function requestStatusRefresh(): void {
  if (!source) return;
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  source()
    .then(publishStatus)
    // A failed refresh is not worth an error banner: the next event or command corrects it.
    .catch(() => undefined)
    .finally(() => {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        requestStatusRefresh();
      }
    });
}

/** Which screen a status calls for. The user's reference is part of it so that
 *  signing in as someone else rebuilds the screen instead of reusing the last one's data. */
export function screenKey(s: Status): string {
  if (s.state === 'signedOut' || !s.user) return 'sign-in';
  return `${s.user.mode}:${s.user.reference}`;
}
