import type { CertificateIssuer } from '../../../certificates/issuer.js';
import type { Step } from '../runner.js';
import type { StepDeps } from '../state.js';
import { type HostService, type HostStepNames, type NameTarget, putHostStep, takeHostStep } from './name.js';

const NAMES: HostStepNames = {
  name: 'ssl',
  absent: 'no certificate issuer here',
  already: 'already issued',
  taken: (fqdn) => `certificate of ${fqdn} revoked`,
};

function issued(certificates: CertificateIssuer | undefined): HostService | undefined {
  return (
    certificates && {
      async put(fqdn) {
        const certificate = await certificates.ensureCertificate(fqdn);
        return `${certificates.kind} certificate ${certificate.serialNumber} for ${fqdn} until ${certificate.notAfter.toISOString()}`;
      },
      take: (fqdn) => certificates.revokeCertificate(fqdn),
    }
  );
}

/** A certificate for the subject's name (CERT_PROVIDER), step `ssl`; undone by revoking it. */
export function certificateStep<S>(deps: Pick<StepDeps, 'certificates'>, target: NameTarget<S>): Step<S> {
  return putHostStep({ names: NAMES, service: issued(deps.certificates), target });
}

/** Revokes the certificate of the subject's name (a deletion's step; idempotent). */
export function revokeStep<S>(deps: Pick<StepDeps, 'certificates'>, target: NameTarget<S>): Step<S> {
  return takeHostStep({ names: NAMES, service: issued(deps.certificates), target });
}
