/**
 * The signed-in session. The access token (15 minutes) lives in memory only; the refresh token in
 * sessionStorage, so a reload keeps the operator signed in but closing the tab ends it.
 *
 * Why not localStorage: refresh tokens are single use and a spent one presented again revokes its
 * whole family. Tabs sharing one token would race to rotate it and sign each other out; a token
 * per tab (sessionStorage) cannot race. It also shortens how long a token outlives its tab.
 * Why not an httpOnly cookie: the API takes the refresh token as a mutation argument (README, "Security"),
 * not from a cookie; a cookie would need a server change and CSRF handling for little gain here.
 */

export interface SessionUser {
  id: string;
  email: string | null;
  firstName: string;
  lastName: string;
  role: string;
}

/** What every sign-in mutation and refreshSession answer with (`AuthSession`). */
export interface AuthSessionFields {
  accessToken: string;
  refreshToken: string;
  expiresAt: string;
  user: SessionUser;
}

export interface Session {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  user: SessionUser;
}

export type SessionState =
  | { status: 'restoring' }
  | { status: 'signed-out'; reason?: string }
  | { status: 'signed-in'; session: Session };

/** Exchanges a refresh token for a new session; null when the server refuses it. */
export type Refresher = (refreshToken: string) => Promise<AuthSessionFields | null>;

const REFRESH_KEY = 'onramp.refreshToken';
/** Refresh a little before expiry, so a request in flight never carries a dead token. */
const EXPIRY_MARGIN_MS = 30_000;

export class SessionStore {
  private state: SessionState;
  private readonly listeners = new Set<() => void>();
  private refreshing: Promise<Session | null> | null = null;
  private refresher: Refresher | null = null;

  constructor(private readonly storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>) {
    this.state = storage.getItem(REFRESH_KEY) ? { status: 'restoring' } : { status: 'signed-out' };
  }

  /** Set once the API client exists (the client itself needs the store). */
  setRefresher(refresher: Refresher): void {
    this.refresher = refresher;
  }

  getState = (): SessionState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  get session(): Session | null {
    return this.state.status === 'signed-in' ? this.state.session : null;
  }

  /** True when the access token is missing or about to expire. */
  needsRefresh(now = Date.now()): boolean {
    const session = this.session;
    return !session || session.expiresAt - EXPIRY_MARGIN_MS <= now;
  }

  signIn(auth: AuthSessionFields): Session {
    this.storage.setItem(REFRESH_KEY, auth.refreshToken);
    const session = {
      accessToken: auth.accessToken,
      expiresAt: Date.parse(auth.expiresAt),
      user: auth.user,
    };
    this.set({ status: 'signed-in', session });
    return session;
  }

  /** Forgets everything locally; the caller revokes the refresh token server-side first. */
  signOut(reason?: string): void {
    this.storage.removeItem(REFRESH_KEY);
    this.set({ status: 'signed-out', reason });
  }

  get refreshToken(): string | null {
    return this.storage.getItem(REFRESH_KEY);
  }

  /**
   * Rotates the refresh token once, however many callers ask at the same time (the HTTP auth
   * exchange, the WebSocket reconnect, the boot-time restore).
   */
  refresh(): Promise<Session | null> {
    this.refreshing ??= this.rotate().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async rotate(): Promise<Session | null> {
    const token = this.refreshToken;
    if (!token || !this.refresher) {
      if (this.state.status !== 'signed-out') this.signOut();
      return null;
    }
    let answer: AuthSessionFields | null;
    try {
      answer = await this.refresher(token);
    } catch {
      // Network trouble is not a verdict on the token: keep it for the next try.
      if (this.state.status === 'restoring')
        this.set({ status: 'signed-out', reason: 'Could not reach the server to restore your session.' });
      return null;
    }
    if (!answer) {
      this.signOut('Your session has ended. Please sign in again.');
      return null;
    }
    return this.signIn(answer);
  }

  private set(state: SessionState): void {
    this.state = state;
    for (const listener of this.listeners) listener();
  }
}
