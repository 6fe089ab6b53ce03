/**
 * Integrator webhooks (docs/decisions/052-webhooks-outbox-and-signatures.md). An application
 * registers endpoints for onboarding events; when an onboarding changes state, {@link
 * WebhookService.queue} writes one delivery per subscribed endpoint and its `deliver_webhook`
 * job in the caller's transaction, so a delivery exists exactly when the change committed.
 * {@link WebhookService.deliver} sends it signed (signature.ts), records every attempt, and
 * schedules the next one with a doubling delay until 24 hours after the delivery was created.
 * An operator's replay is a new delivery of the same event, signed afresh.
 *
 * The only file of this module other modules import (besides signature.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { decryptSecret, encryptSecret } from '../../crypto.js';
import type { CentralPrisma } from '../../db/database.js';
import { queryRows, type RawDb } from '../../db/raw.js';
import type { Config } from '../../env.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { Prisma, type WebhookDelivery, type WebhookEndpoint } from '../../generated/central/client.js';
import { addJob, addJobSql } from '../../jobs/index.js';
import type { Logger } from '../../logger.js';
import { CONTROL_CHARACTER_MESSAGE, findControlCharacter } from '../../text-input.js';
import { recordAudit } from '../audit/record.js';
import { holdsLiveKey } from '../onboarding/api-credentials.js';
import { signWebhook, WEBHOOK_SIGNATURE_HEADER } from './signature.js';
import { BlockedTargetError, guardedLookup, isPrivateAddress, targetProblem } from './targets.js';

export const WEBHOOK_EVENTS = [
  'onboarding.provisioned',
  'onboarding.completed',
  'onboarding.failed',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** A failed delivery is retried until this long after it was created, then marked failed. */
export const WEBHOOK_RETRY_WINDOW_MS = 24 * 3_600_000;
/** The doubling delay between attempts stops growing here. */
const MAX_RETRY_DELAY_MS = 3_600_000;
/** A receiver has this long to answer (connection included). */
const DELIVERY_TIMEOUT_MS = 10_000;
/** Endpoints one application may have at once. */
const MAX_ENDPOINTS = 20;
/** Attempts graphile-worker makes of one job when the handler itself fails (e.g. the database). */
const JOB_MAX_ATTEMPTS = 5;

/** What an event tells of its onboarding (`eventData`). */
interface EventOnboarding {
  id: string;
  applicationId: string;
  status: string;
  infrastructureStatus: string;
  subdomain: string;
  tenantId: string | null;
}

export interface WebhookDeps {
  config: Config;
  logger: Logger;
  prisma: CentralPrisma;
}

/** Who acts: a tenant's API credentials (onboardingId) or a super-admin (userId). */
export interface WebhookActor {
  userId: string | null;
  onboardingId: string | null;
  ip: string | null;
}

export interface NewEndpoint {
  url: unknown;
  events: unknown;
}

export type DeliveryWithAttempts = Prisma.WebhookDeliveryGetPayload<{ include: { attemptsLog: true } }>;

/** What one attempt came to: the receiver's status, or why there was none. */
interface Outcome {
  status: number | null;
  error: string | null;
}

export class WebhookService {
  constructor(private readonly deps: WebhookDeps) {}

  /**
   * A new endpoint; its signing secret (`whsec_…`) is returned this once, kept encrypted.
   * @param path where the input sits, for ValidationError paths (REST: [], GraphQL: ['input'])
   * @throws ValidationError, NotFoundError (no such application, or its key revoked)
   */
  async createEndpoint(
    applicationId: string,
    input: NewEndpoint,
    actor: WebhookActor,
    path: string[] = [],
  ): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const { url, events } = this.validate(input, path);
    const { prisma, config } = this.deps;
    const id = randomUUID();
    const secret = `whsec_${randomBytes(32).toString('base64url')}`;
    const endpoint = await prisma.$transaction(async (tx) => {
      // Only while the application holds a live key, share-locked until this commits: a
      // revocation waits and deletes this endpoint too; one after it leaves nothing to register.
      if (!(await holdsLiveKey(tx, applicationId))) throw new NotFoundError('application');
      const count = await tx.webhookEndpoint.count({ where: { applicationId, deletedAt: null } });
      if (count >= MAX_ENDPOINTS) {
        throw new ValidationError([
          { path: [...path, 'url'], message: `An application has at most ${MAX_ENDPOINTS} endpoints` },
        ]);
      }
      const created = await tx.webhookEndpoint.create({
        data: {
          id,
          applicationId,
          url,
          events,
          secretEncrypted: encryptSecret(secret, config.encryptionKey, id),
          createdByOnboardingId: actor.onboardingId,
        },
      });
      await recordAudit(tx, {
        action: 'webhook.endpoint_created',
        actorId: actor.userId,
        targetType: 'webhook_endpoint',
        targetId: id,
        data: { applicationId, events, onboardingId: actor.onboardingId },
        ip: actor.ip,
      });
      return created;
    });
    return { endpoint, secret };
  }

  /** The application's endpoints (deleted ones excluded), newest first. */
  listEndpoints(applicationId: string): Promise<WebhookEndpoint[]> {
    return this.deps.prisma.webhookEndpoint.findMany({
      where: { applicationId, deletedAt: null },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    });
  }

  /**
   * Stops deliveries to an endpoint (pending ones end as failed at their next attempt); its
   * history is kept. @param applicationId the caller's application, null for a super-admin.
   * @throws NotFoundError
   */
  async deleteEndpoint(
    applicationId: string | null,
    id: string,
    actor: WebhookActor,
  ): Promise<WebhookEndpoint> {
    return this.deps.prisma.$transaction(async (tx) => {
      const found = await tx.webhookEndpoint.findFirst({
        where: { id, deletedAt: null, ...(applicationId ? { applicationId } : {}) },
      });
      if (!found) throw new NotFoundError('webhook endpoint');
      const deleted = await tx.webhookEndpoint.update({ where: { id }, data: { deletedAt: new Date() } });
      await recordAudit(tx, {
        action: 'webhook.endpoint_deleted',
        actorId: actor.userId,
        targetType: 'webhook_endpoint',
        targetId: id,
        data: { applicationId: found.applicationId, onboardingId: actor.onboardingId },
        ip: actor.ip,
      });
      return deleted;
    });
  }

  /** The application's deliveries with their attempts, newest first. */
  listDeliveries(applicationId: string, first = 50): Promise<DeliveryWithAttempts[]> {
    return this.deps.prisma.webhookDelivery.findMany({
      where: { applicationId },
      include: { attemptsLog: { orderBy: { attempt: 'asc' } } },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: Math.min(Math.max(first, 1), 200),
    });
  }

  /**
   * Sends a delivery's event again, as a new delivery (new attempts, a fresh signature).
   * @throws NotFoundError, ConflictError (its endpoint was deleted)
   */
  async replay(deliveryId: string, actor: WebhookActor): Promise<WebhookDelivery> {
    return this.deps.prisma.$transaction(async (tx) => {
      const original = await tx.webhookDelivery.findUnique({
        where: { id: deliveryId },
        include: { endpoint: true },
      });
      if (!original) throw new NotFoundError('webhook delivery');
      if (original.endpoint.deletedAt) throw new ConflictError('The endpoint of this delivery was deleted');
      const replay = await tx.webhookDelivery.create({
        data: {
          endpointId: original.endpointId,
          applicationId: original.applicationId,
          eventId: original.eventId,
          event: original.event,
          onboardingId: original.onboardingId,
          body: original.body,
          replayOfId: original.id,
        },
      });
      await addJob(tx, 'deliver_webhook', { deliveryId: replay.id }, { maxAttempts: JOB_MAX_ATTEMPTS });
      await recordAudit(tx, {
        action: 'webhook.delivery_replayed',
        actorId: actor.userId,
        targetType: 'webhook_delivery',
        targetId: replay.id,
        data: { applicationId: original.applicationId, replayOf: original.id, event: original.event },
        ip: actor.ip,
      });
      return replay;
    });
  }

  /**
   * Queues `event` about an onboarding for every endpoint of its application subscribed to it,
   * in the caller's transaction `tx` (a rollback leaves no delivery and no job).
   * @param extra fields added to the event's `data` (e.g. the failed step)
   * @returns how many deliveries were queued
   */
  async queue(
    tx: RawDb,
    event: WebhookEvent,
    onboardingId: string,
    extra: Record<string, string> = {},
  ): Promise<number> {
    const [onboarding] = await queryRows<EventOnboarding>(
      tx,
      Prisma.sql`
        SELECT id::text, application_id::text AS "applicationId", status,
          infrastructure_status AS "infrastructureStatus", subdomain, tenant_id AS "tenantId"
        FROM onboardings WHERE id = ${onboardingId}::uuid`,
    );
    if (!onboarding) throw new Error(`webhook event ${event} of a missing onboarding`);
    const eventId = `evt_${randomUUID().replaceAll('-', '')}`;
    const body = JSON.stringify({
      id: eventId,
      type: event,
      created_at: new Date().toISOString(),
      data: { ...this.eventData(onboarding), ...extra },
    });
    // One delivery and its job per subscribed endpoint, in one statement.
    const job = addJobSql(
      'deliver_webhook',
      { deliveryId: Prisma.sql`d.id::text` },
      { maxAttempts: JOB_MAX_ATTEMPTS },
    );
    const queued = await queryRows<{ id: string }>(
      tx,
      Prisma.sql`
        WITH d AS (
          INSERT INTO webhook_deliveries (endpoint_id, application_id, event_id, event, onboarding_id, body)
          SELECT e.id, e.application_id, ${eventId}::text, ${event}::text, ${onboardingId}::uuid, ${body}::text
          FROM webhook_endpoints e
          WHERE e.application_id = ${onboarding.applicationId}::uuid AND e.deleted_at IS NULL
            AND ${event}::text = ANY (e.events)
          RETURNING id)
        SELECT d.id::text, ${job} IS NOT NULL AS queued FROM d`,
    );
    return queued.length;
  }

  /**
   * One attempt of a delivery (the `deliver_webhook` job). Safe to run twice: an attempt is
   * claimed first, and a settled delivery is left alone.
   */
  async deliver(deliveryId: string): Promise<void> {
    const { prisma } = this.deps;
    const row = await prisma.webhookDelivery.findUnique({
      where: { id: deliveryId },
      include: { endpoint: true },
    });
    if (row?.status !== 'pending') return;
    const logger = this.deps.logger.child({ deliveryId, event: row.event, endpointId: row.endpointId });
    const claimed = await prisma.webhookDelivery.updateMany({
      where: { id: deliveryId, status: 'pending', attempts: row.attempts },
      data: { attempts: { increment: 1 }, nextAttemptAt: null },
    });
    if (claimed.count === 0) return;
    const attempt = row.attempts + 1;
    const startedAt = new Date();
    const started = performance.now();
    const outcome: Outcome = row.endpoint.deletedAt
      ? { status: null, error: 'the endpoint was deleted' }
      : await this.post(row.endpoint, row);
    const durationMs = Math.round(performance.now() - started);
    const succeeded = outcome.status !== null && outcome.status >= 200 && outcome.status < 300;
    const error = succeeded ? null : (outcome.error ?? `HTTP ${outcome.status}`);
    const nextAt = new Date(Date.now() + this.retryDelay(attempt));
    const retry =
      !succeeded &&
      !row.endpoint.deletedAt &&
      nextAt.getTime() - row.createdAt.getTime() <= WEBHOOK_RETRY_WINDOW_MS;
    await prisma.$transaction(async (tx) => {
      await tx.webhookAttempt.create({
        data: { deliveryId, attempt, startedAt, durationMs, responseStatus: outcome.status, error },
      });
      if (succeeded) {
        await tx.webhookDelivery.update({
          where: { id: deliveryId },
          data: { status: 'succeeded', deliveredAt: new Date() },
        });
      } else if (retry) {
        await tx.webhookDelivery.update({ where: { id: deliveryId }, data: { nextAttemptAt: nextAt } });
        await addJob(tx, 'deliver_webhook', { deliveryId }, { runAt: nextAt, maxAttempts: JOB_MAX_ATTEMPTS });
      } else {
        await tx.webhookDelivery.update({ where: { id: deliveryId }, data: { status: 'failed' } });
      }
    });
    if (succeeded) logger.info({ attempt, status: outcome.status, durationMs }, 'webhook delivered');
    else logger.warn({ attempt, error, willRetry: retry }, 'webhook attempt failed');
  }

  /** Base delay doubled per attempt, at most an hour, ±20 % so that retries do not bunch up. */
  private retryDelay(attempt: number): number {
    const base = Math.min(this.deps.config.webhookRetryBaseMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  private post(endpoint: WebhookEndpoint, delivery: WebhookDelivery): Promise<Outcome> {
    const { config } = this.deps;
    const allowPrivate = config.webhookAllowPrivateTargets;
    const problem = targetProblem(endpoint.url, {
      requireHttps: config.env === 'production',
      allowPrivate,
    });
    if (problem) return Promise.resolve({ status: null, error: `the URL ${problem}` });
    const url = new URL(endpoint.url);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // An address literal is connected to without a lookup: checked here instead.
    if (!allowPrivate && isPrivateAddress(host)) {
      return Promise.resolve({ status: null, error: new BlockedTargetError(host).message });
    }
    const secret = decryptSecret(endpoint.secretEncrypted, config.encryptionKey, endpoint.id);
    const timestamp = Math.floor(Date.now() / 1000);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<Outcome>((resolve) => {
      const settle = (outcome: Outcome) => {
        resolve(outcome);
        req.destroy();
      };
      const req = send(
        url,
        {
          method: 'POST',
          lookup: guardedLookup(allowPrivate),
          timeout: DELIVERY_TIMEOUT_MS,
          headers: {
            'content-type': 'application/json',
            'user-agent': 'Onramp-Webhooks/1',
            [WEBHOOK_SIGNATURE_HEADER]: signWebhook(secret, timestamp, delivery.body),
            'onramp-event': delivery.event,
            'onramp-event-id': delivery.eventId,
            'onramp-delivery': delivery.id,
          },
        },
        (res) => {
          // The answer's body is of no use to us (and never stored): drained, so the socket frees.
          res.resume();
          res.on('end', () => settle({ status: res.statusCode ?? null, error: null }));
          res.on('error', () => settle({ status: res.statusCode ?? null, error: null }));
        },
      );
      const deadline = setTimeout(
        () => settle({ status: null, error: `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` }),
        DELIVERY_TIMEOUT_MS,
      );
      req.on('close', () => clearTimeout(deadline));
      req.on('timeout', () =>
        settle({ status: null, error: `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` }),
      );
      req.on('error', (error) => settle({ status: null, error: describeFailure(error) }));
      req.end(delivery.body);
    });
  }

  /** What an event says about its onboarding: the fields of GET /status, nothing secret. */
  private eventData(onboarding: EventOnboarding): Record<string, unknown> {
    const fullDomain = `${onboarding.subdomain}.${this.deps.config.baseDomain}`;
    return {
      uuid: onboarding.id,
      onboarding_status: onboarding.status,
      infrastructure_status: onboarding.infrastructureStatus,
      subdomain: onboarding.subdomain,
      full_domain: fullDomain,
      url: `https://${fullDomain}`,
      tenant_id: onboarding.tenantId,
    };
  }

  /** @throws ValidationError */
  private validate(input: NewEndpoint, path: string[]): { url: string; events: WebhookEvent[] } {
    const problems: { path: string[]; message: string }[] = [];
    const { config } = this.deps;
    let url = '';
    if (typeof input.url !== 'string') {
      problems.push({ path: [...path, 'url'], message: 'url is required (an https:// URL)' });
    } else if (findControlCharacter(input.url)) {
      problems.push({ path: [...path, 'url'], message: CONTROL_CHARACTER_MESSAGE });
    } else {
      url = input.url.trim();
      const problem = targetProblem(url, {
        requireHttps: config.env === 'production',
        allowPrivate: config.webhookAllowPrivateTargets,
      });
      if (problem) problems.push({ path: [...path, 'url'], message: `url ${problem}` });
    }
    const events: WebhookEvent[] = [];
    if (!Array.isArray(input.events) || input.events.length === 0) {
      problems.push({
        path: [...path, 'events'],
        message: `events must list at least one of ${WEBHOOK_EVENTS.join(', ')}`,
      });
    } else {
      for (const [index, event] of input.events.entries()) {
        if (typeof event === 'string' && (WEBHOOK_EVENTS as readonly string[]).includes(event)) {
          if (!events.includes(event as WebhookEvent)) events.push(event as WebhookEvent);
        } else {
          problems.push({
            path: [...path, 'events', String(index)],
            message: `Unknown event; expected one of ${WEBHOOK_EVENTS.join(', ')}`,
          });
        }
      }
    }
    if (problems.length > 0) throw new ValidationError(problems);
    return { url, events };
  }
}

/** A short, secret-free reason a request got no answer. */
function describeFailure(error: Error): string {
  if (error instanceof BlockedTargetError) return error.message;
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ETIMEDOUT':
      return `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s`;
    default:
      return code ? `request failed (${code})` : 'request failed';
  }
}
