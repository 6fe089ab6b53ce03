/**
 * What the console knows of its connection: is the API reachable, does the central database
 * answer (the public `health` query says), and what state the WebSocket is really in. Pages
 * use it to tell an outage from data ("unreachable", not "Unexpected error." and zeros), keep
 * their last data greyed, and refetch once things are back.
 */
import { useSyncExternalStore } from 'react';

export type SocketState = 'idle' | 'connecting' | 'open' | 'closed';

export interface ConnectionState {
  /** Whether the API answered the last probe (or request). */
  api: 'ok' | 'unreachable';
  /** Whether the central database answered, as the API's `health` reports it. */
  database: 'ok' | 'unreachable';
  /** The subscriptions' WebSocket. */
  socket: SocketState;
  /** Epoch ms the current trouble began; null while all is well. */
  troubleSince: number | null;
}

const HEALTH = JSON.stringify({
  query: 'query ConsoleConnection_HealthQuery { health { status checks { name ok } } }',
});
/** While something is down, probe this often. */
const PROBE_MS = 2_000;

export class ConnectionMonitor {
  private state: ConnectionState = { api: 'ok', database: 'ok', socket: 'idle', troubleSince: null };
  private readonly listeners = new Set<() => void>();
  private readonly recoveredListeners = new Set<() => void>();
  private probing: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly probe: () => Promise<Response> = () =>
      fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: HEALTH,
        cache: 'no-store',
      }),
  ) {}

  getState = (): ConnectionState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Called once the API and the database answer again after an outage. */
  onRecovered(listener: () => void): () => void {
    this.recoveredListeners.add(listener);
    return () => this.recoveredListeners.delete(listener);
  }

  get healthy(): boolean {
    return this.state.api === 'ok' && this.state.database === 'ok';
  }

  /** A request failed in a way that may be an outage: find out which (API or database). */
  reportFailure(): void {
    void this.check();
  }

  /** A request succeeded: when trouble was known, check whether it is over. */
  reportSuccess(): void {
    if (!this.healthy) void this.check();
  }

  setSocket(socket: SocketState): void {
    if (this.state.socket === socket) return;
    this.set({ ...this.state, socket });
    // A socket that drops is often the first sign of a server going away.
    if (socket === 'closed') this.reportFailure();
  }

  /** Probes `health` once (concurrent callers share the probe), then again while unhealthy. */
  check(): Promise<void> {
    this.probing ??= this.runProbe().finally(() => {
      this.probing = null;
    });
    return this.probing;
  }

  dispose(): void {
    clearTimeout(this.timer);
  }

  private async runProbe(): Promise<void> {
    clearTimeout(this.timer);
    const wasHealthy = this.healthy;
    let api: ConnectionState['api'] = 'ok';
    let database: ConnectionState['database'] = 'ok';
    try {
      const response = await this.probe();
      const body = (await response.json()) as {
        data?: { health?: { checks?: { name: string; ok: boolean }[] } };
      };
      const central = body.data?.health?.checks?.find((check) => check.name === 'central_database');
      if (!central) api = response.ok ? 'ok' : 'unreachable';
      if (central && !central.ok) database = 'unreachable';
      if (!body.data?.health) api = 'unreachable';
    } catch {
      api = 'unreachable';
      database = this.state.database;
    }
    const healthy = api === 'ok' && database === 'ok';
    this.set({
      ...this.state,
      api,
      database,
      troubleSince: healthy ? null : (this.state.troubleSince ?? Date.now()),
    });
    if (!healthy) {
      this.timer = setTimeout(() => void this.check(), PROBE_MS);
    } else if (!wasHealthy) {
      for (const listener of this.recoveredListeners) listener();
    }
  }

  private set(state: ConnectionState): void {
    this.state = state;
    for (const listener of this.listeners) listener();
  }
}

export const connection = new ConnectionMonitor();

export function useConnection(): ConnectionState {
  return useSyncExternalStore(connection.subscribe, connection.getState);
}

/** One sentence for an operator, or null while all is well. */
export function describeOutage(state: ConnectionState): string | null {
  if (state.api === 'unreachable') return 'The Onramp server cannot be reached.';
  if (state.database === 'unreachable') return 'The server answers, but its central database is unreachable.';
  return null;
}
