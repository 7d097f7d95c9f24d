import { describe, expect, it, vi } from 'vitest';
import type { Status } from '../src/api';
import {
  currentStatus,
  publishStatus,
  requestStatusRefresh,
  screenKey,
  setStatusSource,
  subscribeStatus,
} from '../src/store';
import { status } from './fixtures';

describe('status store', () => {
  it('passes each status and the previous one to subscribers until they leave', () => {
    const seen: [string, string | undefined][] = [];
    const off = subscribeStatus((s, prev) => seen.push([s.state, prev?.state]));
    publishStatus(status({ state: 'offline' }));
    publishStatus(status({ state: 'online' }));
    off();
    publishStatus(status({ state: 'syncing' }));
    expect(seen.map(([state]) => state)).toEqual(['offline', 'online']);
    expect(seen[1]).toEqual(['online', 'offline']);
    expect(currentStatus()?.state).toBe('syncing');
  });

  it('collapses a burst of refresh requests into one call plus one follow-up', async () => {
    let resolveFirst!: (s: Status) => void;
    const source = vi
      .fn<() => Promise<Status>>()
      .mockImplementationOnce(() => new Promise((r) => (resolveFirst = r)))
      .mockResolvedValue(status({ pending: 2 }));
    setStatusSource(source);
    requestStatusRefresh();
    requestStatusRefresh();
    requestStatusRefresh();
    expect(source).toHaveBeenCalledTimes(1);
    resolveFirst(status({ pending: 1 }));
    await vi.waitFor(() => expect(source).toHaveBeenCalledTimes(2));
    await vi.waitFor(() => expect(currentStatus()?.pending).toBe(2));
  });

  it('ignores a failing refresh', async () => {
    publishStatus(status({ pending: 5 }));
    const source = vi.fn<() => Promise<Status>>().mockRejectedValue({ code: 'Offline', message: 'x' });
    setStatusSource(source);
    requestStatusRefresh();
    await vi.waitFor(() => expect(source).toHaveBeenCalledTimes(1));
    expect(currentStatus()?.pending).toBe(5);
  });
});

describe('screenKey', () => {
  it('picks sign-in when signed out, else the mode and user', () => {
    expect(screenKey(status({ state: 'signedOut', user: null }))).toBe('sign-in');
    expect(screenKey(status({ state: 'offline' }))).toBe('hospital:Practitioner/p1');
    expect(screenKey(status({ user: { reference: 'Practitioner/ph', name: 'P', mode: 'pharmacy' } }))).toBe(
      'pharmacy:Practitioner/ph',
    );
  });
});
