import type { DnsProvider } from '../../../dns/provider.js';
import type { Step } from '../runner.js';
import type { StepDeps } from '../state.js';
import { type HostService, type HostStepNames, type NameTarget, putHostStep, takeHostStep } from './name.js';

const NAMES: HostStepNames = {
  name: 'dns',
  absent: 'no DNS provider here',
  already: 'already configured',
  taken: (fqdn) => `${fqdn} unpublished`,
};

function published(dns: DnsProvider | undefined): HostService | undefined {
  return (
    dns && {
      async put(fqdn) {
        const records = await dns.publishSubdomain(fqdn);
        return `${fqdn} → ${records.map((record) => `${record.type} ${record.value}`).join(', ')}`;
      },
      take: (fqdn) => dns.unpublishSubdomain(fqdn),
    }
  );
}

/** Points the subject's name at the ingress (DNS_PROVIDER); undone by unpublishing it. */
export function dnsStep<S>(deps: Pick<StepDeps, 'dns'>, target: NameTarget<S>): Step<S> {
  return putHostStep({ names: NAMES, service: published(deps.dns), target });
}

/** Removes the subject's name from DNS (a deletion's step; idempotent). */
export function unpublishStep<S>(deps: Pick<StepDeps, 'dns'>, target: NameTarget<S>): Step<S> {
  return takeHostStep({ names: NAMES, service: published(deps.dns), target });
}
