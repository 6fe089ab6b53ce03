/**
 * A limit error over WebSocket (depth, aliases, tokens, cost: graphql-armor) answers that
 * operation with an error and leaves the socket open: the client's other subscriptions keep
 * receiving events, and its next operations still run.
 */
import type { Client } from 'graphql-ws';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';
import { registerClinic } from '../test/registration-flow.js';

const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });

/** Runs one operation; resolves with its result, or with the errors it was refused with. */
function run(
  client: Client,
  query: string,
): Promise<{
  data?: unknown;
  errors?: readonly { message: string; extensions?: Record<string, unknown> }[];
}> {
  return new Promise((resolve, reject) => {
    let result: { data?: unknown; errors?: readonly { message: string }[] } | undefined;
    client.subscribe(
      { query },
      {
        next: (value) => {
          result = value as typeof result;
        },
        error: (error) => {
          if (Array.isArray(error)) resolve({ errors: error });
          else reject(error);
        },
        complete: () => (result ? resolve(result) : reject(new Error('completed without a result'))),
      },
    );
  });
}

/** 20 aliases (maxAliases 15), 3,100 tokens (maxTokens 3,000). */
const aliases = `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: health { status }`).join(' ')} }`;
const tokens = `{ health { ${'status '.repeat(3100)} } }`;
/** Eleven levels: one more than maxDepth. */
const depth = `{ __type(name: "Query") { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }`;

describe('limit errors over one WebSocket', () => {
  it('refuse the offending operations one by one; the socket, a live subscription and later queries go on', async () => {
    const client = t.ws({ connectionParams: await t.superAdmin() });
    let closed = 0;
    client.on('closed', () => {
      closed += 1;
    });
    const events: { status: string; step: string }[] = [];
    let subscriptionError: unknown;
    const dispose = client.subscribe<{ provisioningProgress: { status: string; step: string } }>(
      { query: 'subscription { provisioningProgress { step status } }' },
      {
        next: (value) => {
          if (value.data) events.push(value.data.provisioningProgress);
        },
        error: (error) => {
          subscriptionError = error;
        },
        complete: () => {},
      },
    );
    // The subscription is live once an operation on the same socket has answered.
    expect((await run(client, '{ health { status } }')).data).toEqual({ health: { status: 'OK' } });

    for (const query of [aliases, tokens, depth]) {
      const answer = await run(client, query);
      expect(answer.data, query.slice(0, 40)).toBeUndefined();
      expect(answer.errors?.length, query.slice(0, 40)).toBeGreaterThan(0);
    }
    expect(closed).toBe(0);

    // Still open: a query answers and the subscription receives a registration's steps.
    expect((await run(client, '{ health { status } }')).data).toEqual({ health: { status: 'OK' } });
    const registered = await registerClinic(t);
    expect(registered.result?.__typename).toBe('RegisterClinicSuccess');
    await expect
      .poll(() => events.some((event) => event.step === 'commit' && event.status === 'SUCCEEDED'))
      .toBe(true);
    expect(subscriptionError).toBeUndefined();
    expect(closed).toBe(0);
    dispose();
  });
});
