// Conflicts dialog: a queued write the server refused because the resource changed
// meanwhile. Both versions side by side; the user keeps theirs, takes the server's,
// or edits a merged version (prefilled with theirs, since that is what they meant to send).
import { conflicts, errorMessage, resolveConflict, type Conflict, type Resolution } from './api';
import { byId, emptyNote, fill, h } from './dom';
import { run, showError } from './errors';

const pretty = (v: unknown): string => JSON.stringify(v, null, 2);

/** Parse the hand-merged text; the contract wants a JSON object (a resource). */
export function parseMerged(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`The merged version is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new Error('The merged version must be a JSON object (the whole resource).');
  }
  return v as Record<string, unknown>;
}

function dialog(): HTMLDialogElement {
  return byId<HTMLDialogElement>('conflicts-dialog');
}

export async function openConflicts(): Promise<void> {
  const d = dialog();
  if (!d.open) d.showModal();
  await reload();
}

function close(): void {
  dialog().close();
}

async function reload(): Promise<void> {
  const body = h('div', { 'aria-busy': 'true' }, 'Loading conflicts…');
  renderFrame(body);
  let list: Conflict[];
  try {
    list = await conflicts();
  } catch (e) {
    close();
    showError(e);
    return;
  }
  fill(body, ...(list.length ? list.map(renderConflict) : [emptyNote('No conflicts. Everything is in sync.')]));
  body.removeAttribute('aria-busy');
}

function renderFrame(body: HTMLElement): void {
  fill(
    dialog(),
    h(
      'article',
      { class: 'conflicts' },
      h(
        'header',
        {},
        h('button', { 'aria-label': 'Close', rel: 'prev', onclick: close }),
        h('strong', {}, 'Sync conflicts'),
      ),
      body,
    ),
  );
}

function renderConflict(c: Conflict): HTMLElement {
  const merged = h('textarea', { class: 'merged', rows: 14, spellcheck: 'false', value: pretty(c.mine) });
  const mergeBox = h('div', { class: 'merge', hidden: true }, h('label', {}, 'Merged version (JSON)', merged));
  const keep = h('button', { class: 'keep-mine' }, 'Keep mine');
  // With theirs deleted, "take theirs" means dropping my change: still a valid choice.
  const take = h('button', { class: 'take-theirs secondary' }, 'Take theirs');
  const mergeBtn = h('button', { class: 'merge-by-hand secondary outline' }, 'Merge by hand');
  const sendMerged = h('button', { class: 'send-merged' }, 'Save merged version');
  mergeBox.append(sendMerged);

  // The page behind a modal dialog is inert and may be covered, so failures are
  // also shown here, next to the buttons, besides the usual #error banner.
  const problem = h('p', { class: 'dialog-error', role: 'alert', hidden: true });
  const resolve = (btn: HTMLButtonElement, r: () => Resolution): void => {
    problem.hidden = true;
    void run(btn, async () => {
      try {
        await resolveConflict(c.seq, r());
      } catch (e) {
        problem.textContent = errorMessage(e);
        problem.hidden = false;
        throw e;
      }
      await reload();
    });
  };
  keep.addEventListener('click', () => resolve(keep, () => 'keepMine'));
  take.addEventListener('click', () => resolve(take, () => 'takeTheirs'));
  mergeBtn.addEventListener('click', () => {
    mergeBox.hidden = !mergeBox.hidden;
    if (!mergeBox.hidden) merged.focus();
  });
  // parseMerged throws inside run(), so bad JSON lands in #error, not in the shell.
  sendMerged.addEventListener('click', () => resolve(sendMerged, () => ({ merged: parseMerged(merged.value) })));

  return h(
    'section',
    { class: 'conflict', dataset: { seq: String(c.seq) } },
    h('h4', {}, `${c.resourceType}/${c.id}`),
    h(
      'div',
      { class: 'grid versions' },
      h('div', {}, h('h5', {}, 'Mine'), h('pre', { class: 'mine' }, pretty(c.mine))),
      h(
        'div',
        {},
        h('h5', {}, 'Theirs (server)'),
        h('pre', { class: 'theirs' }, c.theirs === null ? 'Deleted on the server.' : pretty(c.theirs)),
      ),
    ),
    h('div', { class: 'actions' }, keep, take, mergeBtn),
    problem,
    mergeBox,
  );
}
