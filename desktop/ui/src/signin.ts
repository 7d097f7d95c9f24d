// Sign-in: the shell opens the server's own sign-in page in a separate window and
// sign_in resolves once the redirect comes back, so this screen only has to wait.
import { lastServer, signIn } from './api';
import { h } from './dom';
import { run } from './errors';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080/fhir';

/** A server URL the shell can use: trimmed, http(s), no trailing slash. Throws with
 *  a message the user can act on. */
export function normalizeServer(input: string): string {
  const t = input.trim().replace(/\/+$/, '');
  if (!t) throw new Error('Enter the server address, e.g. ' + DEFAULT_SERVER);
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    throw new Error(`"${t}" is not a valid address.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error('The server address must start with http:// or https://');
  }
  return t;
}

export function renderSignIn(): HTMLElement {
  const input = h('input', {
    id: 'server-url',
    type: 'url',
    name: 'server',
    value: DEFAULT_SERVER,
    autocomplete: 'url',
    required: true,
  });
  const button = h('button', { id: 'sign-in', type: 'submit' }, 'Sign in');
  const waiting = h('p', { id: 'sign-in-waiting', 'aria-busy': 'true', hidden: true }, 'Waiting for sign-in…');
  // novalidate: our own check (normalizeServer) reports through #error like every other failure.
  const form = h(
    'form',
    { novalidate: true },
    h('label', {}, 'Server', input, h('small', {}, 'The CuraNet FHIR endpoint of your hospital or pharmacy.')),
    button,
    waiting,
  );

  // Prefill with the last server, unless the user already started typing.
  const untouched = input.value;
  lastServer()
    .then((s) => {
      if (s && input.value === untouched) input.value = s;
    })
    .catch(() => undefined); // the default is a fine fallback

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    waiting.hidden = false;
    input.disabled = true;
    void run(button, async () => {
      // On success the published Status switches the app to the signed-in view.
      await signIn(normalizeServer(input.value));
    }).finally(() => {
      waiting.hidden = true;
      input.disabled = false;
    });
  });

  return h(
    'article',
    { id: 'sign-in-view', class: 'sign-in' },
    h('header', {}, h('h2', {}, 'Sign in to CuraNet')),
    form,
  );
}
