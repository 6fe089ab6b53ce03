import type { Step } from '../runner.js';
import type { StepDeps } from '../state.js';
import type { NameTarget } from './dns.js';

/** A certificate for the subject's name (CERT_PROVIDER), step `ssl`; undone by revoking it. */
export function certificateStep<S>(deps: Pick<StepDeps, 'certificates'>, target: NameTarget<S>): Step<S> {
  const { certificates } = deps;
  return {
    name: 'ssl',
    async run(state) {
      if (!certificates) return { skipped: 'no certificate issuer here' };
      if (await target.done?.(state)) return { skipped: 'already issued' };
      const fqdn = await target.fqdn(state);
      if (!fqdn) throw new Error('the record of what the name belongs to is missing');
      const certificate = await certificates.ensureCertificate(fqdn);
      await target.markDone?.(state);
      return {
        note: `${certificates.kind} certificate ${certificate.serialNumber} for ${fqdn} until ${certificate.notAfter.toISOString()}`,
      };
    },
    ...(target.keep
      ? {}
      : {
          async undo(state: S) {
            const fqdn = await target.fqdn(state);
            if (fqdn) await certificates?.revokeCertificate(fqdn);
          },
        }),
  };
}

/** Revokes the certificate of the subject's name (a deletion's step; idempotent). */
export function revokeStep<S>(deps: Pick<StepDeps, 'certificates'>, target: NameTarget<S>): Step<S> {
  return {
    name: 'ssl',
    async run(state) {
      if (!deps.certificates) return { skipped: 'no certificate issuer here' };
      const fqdn = await target.fqdn(state);
      if (fqdn) await deps.certificates.revokeCertificate(fqdn);
      return fqdn ? { note: `certificate of ${fqdn} revoked` } : { skipped: 'no name' };
    },
  };
}
