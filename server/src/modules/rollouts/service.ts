/**
 * Fleet rollouts of the clinic schema (docs/decisions/047): every READY clinic database behind
 * the current clinic schema is upgraded as an UPGRADE run, canaries first, then the rest a few at
 * a time. The rollout's state lives in the central database (`rollouts`, `rollout_clinics`); the
 * instance holding its lease drives it, so it survives a restart and exactly one drives it.
 * Other modules use only this file's exports.
 */
import { randomUUID } from 'node:crypto';
import type { CentralPrisma, Databases } from '../../db/database.js';
import { holdLease, releaseLease } from '../../db/leases.js';
import type { Migration } from '../../db/migrator.js';
import type { Config } from '../../env.js';
import { ConflictError, type FieldError, NotFoundError, ValidationError } from '../../errors.js';
import type { RolloutClinicState, RolloutStatus } from '../../generated/central/enums.js';
import type { Logger } from '../../logger.js';
import { recordAudit } from '../audit/record.js';
import { type AuditActor, clinicSubject, describe, type ProvisioningService } from '../provisioning/index.js';
import { isBusy, type UpgradeState, upgradePlan, upgradeState } from './steps.js';

export interface StartRolloutInput {
  /** Clinics upgraded first, alone, before the rest. @default 1 */
  canary?: number;
  /**
   * After the canaries: go on by itself when every canary is HEALTHY (true), or pause for a
   * look until resumeRollout (false). @default false
   */
  continueWhenHealthy?: boolean;
  /** Clinics upgraded at once after the canaries. @default 4 */
  concurrency?: number;
  /** Failed clinics tolerated (since the last resume); one more pauses the rollout. @default 0 */
  failureThreshold?: number;
}

export interface RolloutCounts {
  total: number;
  /** Upgraded. */
  done: number;
  failed: number;
  /** Not upgraded yet (pending or being upgraded). */
  remaining: number;
  running: number;
}

export interface RolloutClinicView {
  clinicId: string;
  clinicName: string | null;
  position: number;
  canary: boolean;
  state: RolloutClinicState;
  attempts: number;
  fromVersion: string | null;
  error: string | null;
  dbStatus: string | null;
  runId: string | null;
  updatedAt: Date;
}

export interface RolloutView {
  id: string;
  status: RolloutStatus;
  targetVersion: string;
  canary: number;
  continueWhenHealthy: boolean;
  concurrency: number;
  failureThreshold: number;
  pauseReason: string | null;
  startedBy: string | null;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
  counts: RolloutCounts;
  clinics: RolloutClinicView[];
}

/** Timings of the driver; tests shorten them. */
export interface RolloutTuning {
  /** Lock wait allowed to each statement of a clinic's upgrade. @default 5000 */
  lockTimeoutMs: number;
  /** Delay before a busy clinic is tried again. @default 10000 */
  busyRetryMs: number;
  /** Attempts of a busy clinic before it counts as failed. @default 10 */
  busyAttempts: number;
}

export interface RolloutDeps {
  config: Config;
  logger: Logger;
  db: Databases;
  /** Runs each clinic's UPGRADE plan (recorded, counted, streamed on provisioningProgress). */
  provisioning: ProvisioningService;
  /** Tells subscribers that a rollout changed (rolloutProgress). */
  publishRollout(rolloutId: string): void;
  tuning?: Partial<RolloutTuning>;
}

const DEFAULT_TUNING: RolloutTuning = { lockTimeoutMs: 5000, busyRetryMs: 10_000, busyAttempts: 10 };
const ACTIVE: RolloutStatus[] = ['RUNNING', 'PAUSED'];

export class RolloutService {
  private readonly prisma: CentralPrisma;
  private readonly migrations: readonly Migration[];
  private readonly tuning: RolloutTuning;
  private readonly instanceId = randomUUID();
  private readonly driving = new Map<string, Promise<void>>();
  private readonly wakers = new Map<string, () => void>();
  private pollTimer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(private readonly deps: RolloutDeps) {
    this.prisma = deps.db.prisma;
    this.migrations = deps.db.clinicMigrations;
    this.tuning = { ...DEFAULT_TUNING, ...deps.tuning };
  }

  /** The clinic schema version this deployment brings clinics to. */
  get targetVersion(): string {
    return this.deps.provisioning.integrity.version;
  }

  private get leaseSeconds(): number {
    return this.deps.config.provisioningLeaseSeconds;
  }

  /**
   * Takes over the rollouts left RUNNING (by a stopped or killed instance, once their lease has
   * lapsed), checking again every half lease; with CLINIC_ROLLOUT_AT_START=auto, also starts a
   * rollout (no canary) for clinics behind the clinic schema when none is under way.
   */
  start(): void {
    const poll = () => {
      this.resumeRunning().catch((error: unknown) =>
        this.deps.logger.warn({ err: error }, 'rollout takeover failed'),
      );
    };
    this.pollTimer = setInterval(poll, (this.leaseSeconds * 1000) / 2);
    this.pollTimer.unref();
    const first =
      this.deps.config.clinicRolloutAtStart === 'auto'
        ? this.startAtBoot().then(poll)
        : Promise.resolve(poll());
    first.catch((error: unknown) => this.deps.logger.error({ err: error }, 'clinic rollout at start failed'));
  }

  private async startAtBoot(): Promise<void> {
    if ((await this.outdatedClinics()).length === 0) return;
    try {
      const rollout = await this.startRollout(
        { canary: 0, concurrency: this.deps.config.clinicHealthConcurrency, failureThreshold: 1_000_000 },
        { userId: null },
      );
      this.deps.logger.info(
        { rolloutId: rollout.id, clinics: rollout.counts.total },
        'clinic rollout started',
      );
    } catch (error) {
      // Another instance started it first, or an operator's rollout is under way: that one will do.
      if (!(error instanceof ConflictError)) throw error;
    }
  }

  /** Stops driving (in-flight clinic upgrades finish) and hands the leases back. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.pollTimer);
    for (const wake of this.wakers.values()) wake();
    await Promise.allSettled(this.driving.values());
  }

  private async resumeRunning(): Promise<void> {
    const running = await this.prisma.rollout.findMany({
      where: { status: 'RUNNING', targetVersion: this.targetVersion },
      select: { id: true },
    });
    for (const { id } of running) await this.drive(id);
  }

  private outdatedClinics() {
    return this.prisma.clinic.findMany({
      where: {
        status: 'READY',
        OR: [{ schemaVersion: null }, { schemaVersion: { not: this.targetVersion } }],
      },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      select: { id: true, schemaVersion: true },
    });
  }

  /**
   * Starts a rollout of every READY clinic behind the current clinic schema (the oldest first,
   * the first `canary` of them as canaries). With no such clinic it is COMPLETED at once.
   * @throws ValidationError for options out of range; ConflictError while another rollout is
   *   RUNNING or PAUSED.
   */
  async startRollout(input: StartRolloutInput, actor: AuditActor): Promise<RolloutView> {
    const options = validate(input);
    const clinics = await this.outdatedClinics();
    const id = randomUUID();
    try {
      await this.prisma.$transaction(async (tx) => {
        await tx.rollout.create({
          data: {
            id,
            targetVersion: this.targetVersion,
            ...options,
            status: clinics.length === 0 ? 'COMPLETED' : 'RUNNING',
            finishedAt: clinics.length === 0 ? new Date() : null,
            canaryPassed: options.canary === 0,
            startedBy: actor.userId,
          },
        });
        await tx.rolloutClinic.createMany({
          data: clinics.map((clinic, position) => ({
            rolloutId: id,
            clinicId: clinic.id,
            position,
            canary: position < options.canary,
            fromVersion: clinic.schemaVersion,
          })),
        });
        await recordAudit(tx, {
          action: 'rollout.start',
          actorId: actor.userId,
          ip: actor.ip ?? null,
          targetType: 'rollout',
          targetId: id,
          data: { ...options, targetVersion: this.targetVersion, clinics: clinics.length },
        });
      });
    } catch (error) {
      if ((error as { code?: string }).code === 'P2002')
        throw new ConflictError('Another rollout is running or paused: resume or abort it first.');
      throw error;
    }
    this.deps.publishRollout(id);
    void this.drive(id);
    return this.get(id);
  }

  /** Stops picking new clinics (those being upgraded finish) until resumeRollout. */
  async pauseRollout(id: string, actor: AuditActor): Promise<RolloutView> {
    await this.transition(id, ['RUNNING'], 'PAUSED', actor, { pauseReason: 'paused by an operator' });
    return this.get(id);
  }

  /**
   * Goes on after a pause: from the canaries to the rest when they are done, and with the
   * failure threshold counted afresh from now.
   * @throws ConflictError when it is not PAUSED, or targets a clinic schema other than this
   *   deployment's (abort it and start a new one).
   */
  async resumeRollout(id: string, actor: AuditActor): Promise<RolloutView> {
    const rollout = await this.find(id);
    if (rollout.status === 'PAUSED' && rollout.targetVersion !== this.targetVersion)
      throw new ConflictError(
        `The rollout targets clinic schema ${rollout.targetVersion}; this deployment's is ${this.targetVersion}. Abort it and start a new one.`,
      );
    const failed = await this.prisma.rolloutClinic.count({ where: { rolloutId: id, state: 'FAILED' } });
    const canariesLeft = await this.prisma.rolloutClinic.count({
      where: { rolloutId: id, canary: true, state: { in: ['PENDING', 'RUNNING'] } },
    });
    await this.transition(id, ['PAUSED'], 'RUNNING', actor, {
      pauseReason: null,
      failureBaseline: failed,
      ...(canariesLeft === 0 ? { canaryPassed: true } : {}),
    });
    void this.drive(id);
    return this.get(id);
  }

  /** Stops for good: clinics not reached stay on their version (those being upgraded finish). */
  async abortRollout(id: string, actor: AuditActor): Promise<RolloutView> {
    await this.transition(id, ACTIVE, 'ABORTED', actor, { finishedAt: new Date() });
    return this.get(id);
  }

  private async transition(
    id: string,
    from: RolloutStatus[],
    to: RolloutStatus,
    actor: AuditActor,
    data: {
      pauseReason?: string | null;
      failureBaseline?: number;
      canaryPassed?: boolean;
      finishedAt?: Date;
    },
  ): Promise<void> {
    const rollout = await this.find(id);
    const changed = await this.prisma.$transaction(async (tx) => {
      const { count } = await tx.rollout.updateMany({
        where: { id, status: { in: from } },
        data: { status: to, ...data },
      });
      if (count === 0) return false;
      await recordAudit(tx, {
        action: (
          {
            PAUSED: 'rollout.pause',
            RUNNING: 'rollout.resume',
            ABORTED: 'rollout.abort',
            COMPLETED: 'rollout.complete',
          } as const
        )[to],
        actorId: actor.userId,
        ip: actor.ip ?? null,
        targetType: 'rollout',
        targetId: id,
        data: { from: rollout.status },
      });
      return true;
    });
    if (!changed) throw new ConflictError(`The rollout is ${rollout.status}.`);
    this.wakers.get(id)?.();
    this.deps.publishRollout(id);
  }

  private async find(id: string) {
    const rollout = await this.prisma.rollout.findUnique({ where: { id } });
    if (!rollout) throw new NotFoundError('rollout');
    return rollout;
  }

  /** The rollouts, newest first. */
  async list(first = 20): Promise<RolloutView[]> {
    const rows = await this.prisma.rollout.findMany({
      orderBy: { createdAt: 'desc' },
      take: first,
      select: { id: true },
    });
    return Promise.all(rows.map((row) => this.get(row.id)));
  }

  /** @throws NotFoundError */
  async get(id: string): Promise<RolloutView> {
    const rollout = await this.find(id);
    const entries = await this.prisma.rolloutClinic.findMany({
      where: { rolloutId: id },
      orderBy: { position: 'asc' },
    });
    const names = new Map(
      (
        await this.prisma.clinic.findMany({
          where: { id: { in: entries.map((entry) => entry.clinicId) } },
          select: { id: true, name: true },
        })
      ).map((clinic) => [clinic.id, clinic.name]),
    );
    const count = (state: RolloutClinicState) => entries.filter((entry) => entry.state === state).length;
    return {
      ...rollout,
      counts: {
        total: entries.length,
        done: count('UPGRADED'),
        failed: count('FAILED'),
        remaining: count('PENDING') + count('RUNNING'),
        running: count('RUNNING'),
      },
      clinics: entries.map((entry) => ({ ...entry, clinicName: names.get(entry.clinicId) ?? null })),
    };
  }

  /**
   * Resolves once the rollout is no longer RUNNING (COMPLETED, PAUSED or ABORTED), for the CLI;
   * `onChange` sees each state on the way.
   */
  async follow(id: string, onChange: (rollout: RolloutView) => void = () => {}): Promise<RolloutView> {
    for (;;) {
      const rollout = await this.get(id);
      onChange(rollout);
      if (rollout.status !== 'RUNNING') return rollout;
      await Promise.race([this.driving.get(id), new Promise((done) => setTimeout(done, 500))]);
    }
  }

  /** The RUNNING or PAUSED rollout, if any. */
  async active(): Promise<RolloutView | null> {
    const rollout = await this.prisma.rollout.findFirst({
      where: { status: { in: ACTIVE } },
      select: { id: true },
    });
    return rollout ? this.get(rollout.id) : null;
  }

  /**
   * Drives the rollout here if this instance gets (or holds) its lease: nobody else drives it, or
   * its driver died and the lease lapsed.
   */
  async drive(id: string): Promise<void> {
    if (this.closing || this.driving.has(id)) return;
    const lease = `rollout:${id}`;
    if (!(await holdLease(this.prisma, lease, this.instanceId, this.leaseSeconds))) return;
    if (this.driving.has(id)) return;
    const driving = this.driveHeld(id, lease).then(
      () => true,
      (error: unknown) => {
        this.deps.logger.error({ err: error, rolloutId: id }, 'rollout driver failed');
        return false;
      },
    );
    this.driving.set(
      id,
      driving.then(async (clean) => {
        this.driving.delete(id);
        await releaseLease(this.prisma, lease, this.instanceId).catch(() => {});
        // Resumed while the clinics in flight at a pause were finishing: drive it again now,
        // not at the next look for abandoned rollouts (which is where a failed driver waits).
        const again = await this.prisma.rollout.findUnique({
          where: { id },
          select: { status: true, targetVersion: true },
        });
        if (
          clean &&
          !this.closing &&
          again?.status === 'RUNNING' &&
          again.targetVersion === this.targetVersion
        )
          await this.drive(id);
      }),
    );
  }

  private async driveHeld(id: string, lease: string): Promise<void> {
    let lost = false;
    const renew = setInterval(
      () => {
        holdLease(this.prisma, lease, this.instanceId, this.leaseSeconds)
          .then((held) => {
            if (!held) lost = true;
          })
          .catch((error: unknown) =>
            this.deps.logger.warn({ err: error, rolloutId: id }, 'rollout lease renewal failed'),
          );
      },
      (this.leaseSeconds * 1000) / 3,
    );
    renew.unref();
    const inFlight = new Map<string, Promise<void>>();
    try {
      // A driver that died mid-upgrade left its clinics RUNNING. Their transactions never
      // committed, or committed whole: the migrations a retry finds pending tell which.
      await this.prisma.rolloutClinic.updateMany({
        where: { rolloutId: id, state: 'RUNNING' },
        data: { state: 'PENDING' },
      });
      while (!lost && !this.closing) {
        const rollout = await this.prisma.rollout.findUnique({ where: { id } });
        if (rollout?.status !== 'RUNNING' || rollout.targetVersion !== this.targetVersion) break;
        const failed = await this.prisma.rolloutClinic.count({ where: { rolloutId: id, state: 'FAILED' } });
        if (failed - rollout.failureBaseline > rollout.failureThreshold) {
          await this.pauseItself(
            id,
            `${failed - rollout.failureBaseline} clinics failed, more than the threshold of ${rollout.failureThreshold}`,
          );
          break;
        }
        const next =
          inFlight.size < rollout.concurrency
            ? await this.prisma.rolloutClinic.findFirst({
                where: {
                  rolloutId: id,
                  state: 'PENDING',
                  clinicId: { notIn: [...inFlight.keys()] },
                  ...(rollout.canaryPassed ? {} : { canary: true }),
                  OR: [{ retryAt: null }, { retryAt: { lte: new Date() } }],
                },
                orderBy: { position: 'asc' },
              })
            : null;
        if (next) {
          const upgrade = this.upgradeClinic(rollout, next.clinicId, next.attempts + 1)
            .catch((error: unknown) =>
              this.deps.logger.error({ err: error, clinicId: next.clinicId }, 'clinic upgrade not recorded'),
            )
            .finally(() => inFlight.delete(next.clinicId));
          inFlight.set(next.clinicId, upgrade);
          continue;
        }
        if (inFlight.size > 0) {
          // Until one finishes, or a pause or abort asks for attention.
          await Promise.race([...inFlight.values(), this.sleep(id, 60_000)]);
          this.wakers.get(id)?.();
          continue;
        }
        const waiting = await this.prisma.rolloutClinic.findFirst({
          where: { rolloutId: id, state: 'PENDING', ...(rollout.canaryPassed ? {} : { canary: true }) },
          orderBy: { retryAt: 'asc' },
          select: { retryAt: true },
        });
        if (waiting) {
          await this.sleep(id, Math.max(0, (waiting.retryAt?.getTime() ?? 0) - Date.now()));
          continue;
        }
        if (!rollout.canaryPassed) {
          await this.endCanary(rollout);
          continue;
        }
        await this.complete(id);
        break;
      }
    } finally {
      await Promise.allSettled(inFlight.values());
      clearInterval(renew);
    }
  }

  /** A wait the rollout's pause, resume or abort (and close) cuts short. */
  private sleep(id: string, ms: number): Promise<void> {
    return new Promise<void>((done) => {
      const finish = () => {
        clearTimeout(timer);
        if (this.wakers.get(id) === finish) this.wakers.delete(id);
        done();
      };
      const timer = setTimeout(finish, ms);
      this.wakers.set(id, finish);
    });
  }

  /** Every canary tried: on to the rest when all are HEALTHY and allowed to, else a pause for a look. */
  private async endCanary(rollout: { id: string; continueWhenHealthy: boolean }): Promise<void> {
    const canaries = await this.prisma.rolloutClinic.findMany({
      where: { rolloutId: rollout.id, canary: true },
      select: { clinicId: true, state: true },
    });
    const unhealthy: string[] = [];
    for (const canary of canaries) {
      const health =
        canary.state === 'UPGRADED' ? await this.deps.provisioning.checkClinic(canary.clinicId) : null;
      if (health?.dbStatus !== 'HEALTHY') unhealthy.push(canary.clinicId);
    }
    if (unhealthy.length === 0 && rollout.continueWhenHealthy) {
      await this.prisma.rollout.update({ where: { id: rollout.id }, data: { canaryPassed: true } });
      this.deps.publishRollout(rollout.id);
      return;
    }
    await this.pauseItself(
      rollout.id,
      unhealthy.length === 0
        ? 'the canaries are upgraded and HEALTHY: resume to upgrade the rest'
        : `${unhealthy.length} of ${canaries.length} canaries are not HEALTHY after the upgrade: resume to upgrade the rest anyway, or abort`,
      { canaryPassed: true },
    );
  }

  private async pauseItself(
    id: string,
    reason: string,
    data: { canaryPassed?: boolean } = {},
  ): Promise<void> {
    const { count } = await this.prisma.rollout.updateMany({
      where: { id, status: 'RUNNING' },
      data: { status: 'PAUSED', pauseReason: reason, ...data },
    });
    if (count > 0) {
      await recordAudit(this.prisma, {
        action: 'rollout.pause',
        actorId: null,
        targetType: 'rollout',
        targetId: id,
        data: { reason },
      });
      this.deps.logger.warn({ rolloutId: id, reason }, 'rollout paused');
    }
    this.deps.publishRollout(id);
  }

  private async complete(id: string): Promise<void> {
    await this.prisma.rollout.updateMany({
      where: { id, status: 'RUNNING' },
      data: { status: 'COMPLETED', finishedAt: new Date() },
    });
    this.deps.publishRollout(id);
  }

  /** One clinic's upgrade as an UPGRADE run; its outcome recorded on the rollout and audited. */
  private async upgradeClinic(
    rollout: { id: string; startedBy: string | null },
    clinicId: string,
    attempt: number,
  ): Promise<void> {
    const where = { rolloutId_clinicId: { rolloutId: rollout.id, clinicId } };
    await this.prisma.rolloutClinic.update({ where, data: { state: 'RUNNING', attempts: attempt } });
    this.deps.publishRollout(rollout.id);
    const clinic = await this.prisma.clinic.findUnique({
      where: { id: clinicId },
      select: {
        name: true,
        status: true,
        schemaVersion: true,
        databaseName: true,
        databaseRole: true,
        databaseServerId: true,
      },
    });
    const server = clinic && this.deps.db.servers.byId.get(clinic.databaseServerId);
    let outcome: { state: RolloutClinicState; error: string | null; runId: string | null; retryAt?: Date };
    if (clinic?.status !== 'READY' || !server) {
      const error = !clinic
        ? 'the clinic no longer exists'
        : !server
          ? `its database server ${this.deps.provisioning.serverName(clinic.databaseServerId)} is unreachable`
          : `the clinic is ${clinic.status}`;
      outcome = { state: 'FAILED', error, runId: null };
    } else {
      const result = await this.runUpgrade(upgradeState(clinicId, clinic, server), attempt);
      if (result.ok) outcome = { state: 'UPGRADED', error: null, runId: result.runId };
      else if (isBusy(result.error) && attempt < this.tuning.busyAttempts)
        outcome = {
          state: 'PENDING',
          error: `busy, tried again later: ${describe(result.error)}`,
          runId: result.runId,
          retryAt: new Date(Date.now() + this.tuning.busyRetryMs),
        };
      else outcome = { state: 'FAILED', error: describe(result.error), runId: result.runId };
    }
    // A failed clinic stays on its version; its health says so (DEGRADED: schema behind).
    const health =
      outcome.state === 'UPGRADED' || !clinic || !server
        ? null
        : await this.deps.provisioning.checkClinic(clinicId).catch(() => null);
    await this.prisma.$transaction(async (tx) => {
      await tx.rolloutClinic.update({
        where,
        data: {
          state: outcome.state,
          error: outcome.error,
          runId: outcome.runId,
          retryAt: outcome.retryAt ?? null,
          dbStatus: outcome.state === 'UPGRADED' ? 'HEALTHY' : (health?.dbStatus ?? null),
        },
      });
      if (outcome.state !== 'PENDING')
        await recordAudit(tx, {
          action: 'clinic.upgrade',
          actorId: rollout.startedBy,
          clinicId: clinic ? clinicId : null,
          targetType: 'clinic',
          targetId: clinicId,
          data: {
            rolloutId: rollout.id,
            runId: outcome.runId,
            outcome: outcome.state,
            fromVersion: clinic?.schemaVersion ?? null,
            toVersion: this.targetVersion,
            error: outcome.error,
          },
        });
    });
    this.deps.publishRollout(rollout.id);
  }

  private runUpgrade(state: UpgradeState, attempt: number) {
    const { provisioning } = this.deps;
    const plan = upgradePlan({
      prisma: this.prisma,
      migrations: this.migrations,
      lockTimeoutMs: this.tuning.lockTimeoutMs,
      checkClinic: (clinicId) => provisioning.checkClinic(clinicId),
    });
    return provisioning.run(plan, clinicSubject(state.clinicId, state.clinicName), state, { attempt });
  }
}

function validate(input: StartRolloutInput): Required<StartRolloutInput> {
  const options = {
    canary: input.canary ?? 1,
    continueWhenHealthy: input.continueWhenHealthy ?? false,
    concurrency: input.concurrency ?? 4,
    failureThreshold: input.failureThreshold ?? 0,
  };
  const fields: FieldError[] = [];
  const check = (name: keyof typeof options, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max)
      fields.push({ path: ['input', name], message: `must be a whole number from ${min} to ${max}` });
  };
  check('canary', options.canary, 0, 1000);
  check('concurrency', options.concurrency, 1, 32);
  check('failureThreshold', options.failureThreshold, 0, 1_000_000);
  if (fields.length > 0) throw new ValidationError(fields);
  return options;
}
