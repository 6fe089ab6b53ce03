import { describe, expect, it } from 'vitest';
import { type AuthSessionFields, SessionStore } from './session';

function memoryStorage() {
  const items = new Map<string, string>();
  return {
    getItem: (key: string) => items.get(key) ?? null,
    setItem: (key: string, value: string) => void items.set(key, value),
    removeItem: (key: string) => void items.delete(key),
    items,
  };
}

const auth = (n: number, expiresInMs = 15 * 60_000): AuthSessionFields => ({
  accessToken: `access-${n}`,
  refreshToken: `refresh-${n}`,
  expiresAt: new Date(Date.now() + expiresInMs).toISOString(),
  user: { id: 'u1', email: 'admin@example.com', firstName: 'A', lastName: 'B', role: 'SUPER_ADMIN' },
});

describe('the session store', () => {
  it('keeps the access token in memory and only the refresh token in storage', () => {
    const storage = memoryStorage();
    const store = new SessionStore(storage);
    expect(store.getState()).toEqual({ status: 'signed-out' });
    store.signIn(auth(1));
    expect([...storage.items.values()]).toEqual(['refresh-1']);
    expect(store.session?.accessToken).toBe('access-1');
  });

  it('restores from a stored refresh token, rotating it once however many callers ask', async () => {
    const storage = memoryStorage();
    storage.setItem('onramp.refreshToken', 'refresh-0');
    const store = new SessionStore(storage);
    expect(store.getState().status).toBe('restoring');
    const presented: string[] = [];
    store.setRefresher(async (token) => {
      presented.push(token);
      await new Promise((resolve) => setTimeout(resolve, 10));
      return auth(1);
    });
    const [a, b, c] = await Promise.all([store.refresh(), store.refresh(), store.refresh()]);
    expect(presented).toEqual(['refresh-0']); // a spent token presented twice would revoke the family
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(storage.getItem('onramp.refreshToken')).toBe('refresh-1');
    expect(store.getState().status).toBe('signed-in');
  });

  it('signs out when the server refuses the refresh token, but not on a network error', async () => {
    const storage = memoryStorage();
    const store = new SessionStore(storage);
    store.signIn(auth(1));
    store.setRefresher(async () => {
      throw new Error('offline');
    });
    expect(await store.refresh()).toBeNull();
    expect(store.getState().status).toBe('signed-in');
    expect(storage.getItem('onramp.refreshToken')).toBe('refresh-1');

    store.setRefresher(async () => null);
    expect(await store.refresh()).toBeNull();
    expect(store.getState()).toMatchObject({ status: 'signed-out' });
    expect(storage.getItem('onramp.refreshToken')).toBeNull();
  });

  it('asks for a refresh shortly before the access token expires', () => {
    const store = new SessionStore(memoryStorage());
    expect(store.needsRefresh()).toBe(true);
    store.signIn(auth(1, 10 * 60_000));
    expect(store.needsRefresh()).toBe(false);
    store.signIn(auth(2, 10_000));
    expect(store.needsRefresh()).toBe(true);
  });
});
