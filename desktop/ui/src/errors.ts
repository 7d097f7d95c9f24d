// The #error banner: the last error message, until the next one or until dismissed.
// The e2e test reads it, so it is one stable element rather than per-form messages.
import { errorMessage } from './api';
import { byId, fill, h } from './dom';

export function showError(e: unknown): void {
  const box = byId('error');
  fill(
    box,
    h('span', { class: 'error-text' }, errorMessage(e)),
    h('button', { class: 'close-error secondary outline', 'aria-label': 'Dismiss', onclick: clearError }, '×'),
  );
  box.hidden = false;
}

export function clearError(): void {
  const box = byId('error');
  box.replaceChildren();
  box.hidden = true;
}

/** Run a user action: disable its button meanwhile (no double submits), clear the old
 *  error first and show a new one if it fails. Resolves to the result or undefined. */
export async function run<T>(button: HTMLButtonElement | null, action: () => Promise<T>): Promise<T | undefined> {
  clearError();
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await action();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}
