/**
 * Fault injection (development and test only): make the next run(s) of a step fail, to exercise
 * rollback. Seeded from FAULT_INJECTION; the `injectFault` mutation adds more at run time.
 */
import type { ProvisioningStepName } from './step-names.js';

export class InjectedFault extends Error {
  override name = 'InjectedFault';
  constructor(readonly step: ProvisioningStepName) {
    super(`injected fault in step ${step}`);
  }
}

/** An injected failure a step retries by itself (engine/transient.ts): a server starting up. */
export class InjectedTransientFault extends Error {
  override name = 'InjectedTransientFault';
  readonly code = '57P03';
  constructor(readonly step: ProvisioningStepName) {
    super(`injected fault in step ${step}: the database system is starting up`);
  }
}

/**
 * Where a reconciler taking over an abandoned run can be made to "die" (test only):
 * `claimed`: it holds the run, nothing undone yet; `undone`: the undo's outside effects (DNS,
 * certificate) are done, its central record not yet.
 */
export type TakeoverCrashPoint = 'claimed' | 'undone';

/** Thrown out of a reconciler's sweep where an injected takeover crash "kills" it. */
export class InjectedTakeoverCrash extends Error {
  override name = 'InjectedTakeoverCrash';
  constructor(readonly point: TakeoverCrashPoint) {
    super(`injected reconciler crash: ${point}`);
  }
}

export class FaultInjector {
  private readonly takeoverCrashing = new Set<TakeoverCrashPoint>();
  private readonly remaining = new Map<ProvisioningStepName, number>();
  private readonly crashing = new Set<ProvisioningStepName>();
  private readonly crashingAfter = new Set<ProvisioningStepName>();
  private readonly transient = new Map<ProvisioningStepName, number>();
  private readonly holds = new Map<ProvisioningStepName, { reached(): void; released: Promise<void> }>();

  constructor(
    private readonly enabled: boolean,
    initial: readonly ProvisioningStepName[] = [],
  ) {
    for (const step of initial) this.inject(step, 1);
  }

  inject(step: ProvisioningStepName, times: number): void {
    if (!this.enabled) throw new Error('fault injection is disabled in production');
    this.remaining.set(step, (this.remaining.get(step) ?? 0) + times);
  }

  /**
   * The next run of `step` behaves as if its process were killed there: its run stops renewing
   * its lease and never goes on (nor returns), so the reconciler finds it abandoned. `before`:
   * on entering the step; `after`: once the step's work (and the record its own transaction
   * writes, docs/decisions/063) is committed, before anything else is recorded or published.
   * @default 'before'
   */
  injectCrash(step: ProvisioningStepName, at: 'before' | 'after' = 'before'): void {
    if (!this.enabled) throw new Error('fault injection is disabled in production');
    (at === 'before' ? this.crashing : this.crashingAfter).add(step);
  }

  /**
   * The next reconciler to reach `point` of a takeover stops there, as if killed: it stops
   * renewing the run's lease and its sweep throws {@link InjectedTakeoverCrash}.
   */
  injectTakeoverCrash(point: TakeoverCrashPoint): void {
    if (!this.enabled) throw new Error('fault injection is disabled in production');
    this.takeoverCrashing.add(point);
  }

  /** Whether an injected takeover crash at `point` is still to be reached. */
  takeoverCrashPending(point: TakeoverCrashPoint): boolean {
    return this.takeoverCrashing.has(point);
  }

  /** Whether a takeover is to crash at `point` now (consumes the crash). */
  takeoverCrashes(point: TakeoverCrashPoint): boolean {
    return this.takeoverCrashing.delete(point);
  }

  /** Whether an injected crash of `step` (before or after it) is still to be reached. */
  crashPending(step: ProvisioningStepName): boolean {
    return this.crashing.has(step) || this.crashingAfter.has(step);
  }

  /** Whether `step` is to crash its run now, on entering it (consumes the crash). */
  crashes(step: ProvisioningStepName): boolean {
    return this.crashing.delete(step);
  }

  /** Whether `step` is to crash its run now, its work done (consumes the crash). */
  crashesAfter(step: ProvisioningStepName): boolean {
    return this.crashingAfter.delete(step);
  }

  /** The next `times` tries of `step` fail as a server starting up does (the step retries them). */
  injectTransient(step: ProvisioningStepName, times: number): void {
    if (!this.enabled) throw new Error('fault injection is disabled in production');
    this.transient.set(step, (this.transient.get(step) ?? 0) + times);
  }

  /**
   * The next run of `step` waits on entering it, before its first try, until `release` is called:
   * what happens meanwhile (a server vanishing, a lock taken) meets the run at that step.
   * `reached` resolves once the run waits there.
   */
  hold(step: ProvisioningStepName): { reached: Promise<void>; release(): void } {
    if (!this.enabled) throw new Error('fault injection is disabled in production');
    let reached!: () => void;
    let release!: () => void;
    const whenReached = new Promise<void>((done) => {
      reached = done;
    });
    const released = new Promise<void>((done) => {
      release = done;
    });
    this.holds.set(step, { reached, released });
    return { reached: whenReached, release };
  }

  /** The wait of a pending hold of `step` (consumed), or undefined when it has none. */
  held(step: ProvisioningStepName): Promise<void> | undefined {
    const hold = this.holds.get(step);
    if (!hold) return undefined;
    this.holds.delete(step);
    hold.reached();
    return hold.released;
  }

  /** Throws (and consumes one fault) when `step` has a pending fault. */
  check(step: ProvisioningStepName): void {
    const transient = this.transient.get(step) ?? 0;
    if (transient > 0) {
      if (transient === 1) this.transient.delete(step);
      else this.transient.set(step, transient - 1);
      throw new InjectedTransientFault(step);
    }
    const left = this.remaining.get(step) ?? 0;
    if (left <= 0) return;
    if (left === 1) this.remaining.delete(step);
    else this.remaining.set(step, left - 1);
    throw new InjectedFault(step);
  }

  pending(): Record<string, number> {
    return Object.fromEntries(this.remaining);
  }
}
