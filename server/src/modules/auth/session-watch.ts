/**
 * Live subscriptions last only as long as the session that opened them: each one of a signed-in
 * caller is watched until its access token expires or its session ends. Session ends travel on
 * the event bus (`sessions`, published by whatever ended them), so every instance rechecks its
 * own subscriptions of that user against the database at once (docs/decisions/016). A watched
 * subscription then answers UNAUTHENTICATED and completes; the client resubscribes with a fresh
 * token, as the console does after a refresh.
 */
import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { Gauge, type Registry } from 'prom-client';
import type { Context, Viewer } from '../../context.js';
import { unauthenticated } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { EventBus } from '../../pubsub/index.js';
import type { AuthService } from './service.js';

type End = 'ended' | 'expired';

interface Watcher {
  viewer: Viewer;
  end(reason: End): void;
}

export interface Watch {
  /** Settles when the session ends or the token expires. */
  ended: Promise<End>;
  dispose(): void;
}

export class SessionWatch {
  private readonly byUser = new Map<string, Set<Watcher>>();
  private readonly events: AsyncIterator<{ userId: string }>;
  private readonly stopRechecking: () => void;

  constructor(
    private readonly deps: {
      auth: Pick<AuthService, 'stillValid'>;
      events: EventBus;
      logger: Logger;
      registry: Registry;
    },
  ) {
    this.events = deps.events.pubsub.subscribe('sessions')[Symbol.asyncIterator]();
    void this.listen();
    // Session ends sent while the bus was down never arrive: recheck every watched user then.
    this.stopRechecking = deps.events.onReconnected(() => {
      for (const userId of [...this.byUser.keys()]) {
        this.recheck(userId).catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, 'live subscriptions not rechecked'),
        );
      }
    });
    const byUser = this.byUser;
    new Gauge({
      name: 'onramp_session_bound_subscriptions',
      help: 'Live subscriptions of signed-in callers, each ended with its session or token',
      registers: [deps.registry],
      collect() {
        let count = 0;
        for (const watchers of byUser.values()) count += watchers.size;
        this.set(count);
      },
    });
  }

  private async listen(): Promise<void> {
    for (;;) {
      const next = await this.events.next();
      if (next.done) return;
      await this.recheck(next.value.userId).catch((error: unknown) =>
        this.deps.logger.warn({ err: error }, 'live subscriptions not rechecked'),
      );
    }
  }

  /** Ends the user's watched subscriptions whose session is no longer valid. */
  private async recheck(userId: string): Promise<void> {
    const watchers = [...(this.byUser.get(userId) ?? [])];
    await Promise.all(
      watchers.map(async (watcher) => {
        if (!(await this.deps.auth.stillValid(watcher.viewer))) watcher.end('ended');
      }),
    );
  }

  watch(viewer: Viewer): Watch {
    let settle: (reason: End) => void = () => {};
    const ended = new Promise<End>((resolve) => {
      settle = resolve;
    });
    const watchers = this.byUser.get(viewer.userId) ?? new Set<Watcher>();
    this.byUser.set(viewer.userId, watchers);
    const timer = setTimeout(
      () => watcher.end('expired'),
      Math.max(0, viewer.expiresAt.getTime() - Date.now()),
    );
    timer.unref();
    const dispose = () => {
      clearTimeout(timer);
      watchers.delete(watcher);
      if (watchers.size === 0 && this.byUser.get(viewer.userId) === watchers)
        this.byUser.delete(viewer.userId);
    };
    const watcher: Watcher = {
      viewer,
      end(reason) {
        dispose();
        settle(reason);
      },
    };
    watchers.add(watcher);
    // The session was read when the operation was authorized, a few awaits ago: an end that
    // arrived in between found nothing to end. Watched from here on, it is read once more.
    this.deps.auth.stillValid(viewer).then(
      (valid) => {
        if (!valid) watcher.end('ended');
      },
      (error: unknown) => this.deps.logger.warn({ err: error }, 'live subscription not rechecked'),
    );
    return { ended, dispose };
  }

  async close(): Promise<void> {
    this.stopRechecking();
    await this.events.return?.();
  }
}

const MESSAGES: Record<End, string> = {
  ended: 'Your session has ended; sign in again',
  expired: 'Your access token has expired; subscribe again with a fresh one',
};

/**
 * An event stream that ends with one UNAUTHENTICATED result when `watch` settles. A plain
 * iterator, not an async generator: a generator's return() waits for its pending await (the
 * next event, maybe never), so an unsubscribe could not end it.
 */
function bounded(
  source: AsyncIterable<ExecutionResult>,
  watch: Watch,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  const finish = async () => {
    if (finished) return;
    finished = true;
    watch.dispose();
    await iterator.return?.();
  };
  const done = { done: true, value: undefined } as const;
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (finished) return done;
      const outcome = await Promise.race([iterator.next(), watch.ended]);
      if (finished) return done;
      if (typeof outcome === 'string') {
        await finish();
        return { done: false, value: { errors: [unauthenticated(MESSAGES[outcome])] } };
      }
      if (outcome.done) await finish();
      return outcome;
    },
    async return() {
      await finish();
      return done;
    },
    async throw(error: unknown) {
      await finish();
      throw error;
    },
  };
}

/** Binds every subscription of a signed-in caller to its session (see {@link SessionWatch}). */
export function useSessionBoundSubscriptions(sessions: SessionWatch): Plugin {
  return {
    onSubscribe({ args }) {
      const viewer = (args.contextValue as Partial<Context>).viewer;
      if (!viewer) return;
      return {
        onSubscribeResult({ result, setResult }) {
          if (typeof result === 'object' && result !== null && Symbol.asyncIterator in result) {
            setResult(bounded(result, sessions.watch(viewer)));
          }
        },
      };
    },
  };
}
