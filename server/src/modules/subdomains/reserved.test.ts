/**
 * Names that mean something to mail clients, browsers, operating systems and certificate
 * authorities (WPAD, ISATAP, Autodiscover, MTA-STS, …) are never a tenant's subdomain, nor
 * look-alikes such as `admin-2` or `www2`: an organisation called so gets a generated name.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import { isAllowedSubdomain, preferredSubdomain } from './allocator.js';

const GENERATED = /^[a-z]+-[a-z]+-\d{4}$/;

describe('reserved names', () => {
  it.each([
    'wpad',
    'isatap',
    'autodiscover',
    'autoconfig',
    'mta-sts',
    'openpgpkey',
    'lyncdiscover',
    'enterpriseenrollment',
    'enterpriseregistration',
    'info',
    'noc',
    'usenet',
    'uucp',
    'news',
    'marketing',
    'sales',
    'acme',
    'acme-challenge',
    'www2',
    'www-2',
    'admin-2',
    'mail3',
    'ns4',
  ])('%s is not a tenant subdomain', (name) => {
    expect(isAllowedSubdomain(name)).toBe(false);
    expect(preferredSubdomain(name)).toMatch(GENERATED);
  });

  it('keeps ordinary names that merely contain a reserved word', () => {
    for (const name of ['www-clinique', 'clinique-admin', 'wpadz', 'mailleau', 'info-sante-lyon']) {
      expect(isAllowedSubdomain(name), name).toBe(true);
      expect(preferredSubdomain(name)).toBe(name);
    }
  });
});

describe('over the public surface', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });

  it('a clinic called "WPAD", "MTA-STS" or "Admin" gets a generated name, not wpad or admin-2', async () => {
    for (const clinicName of ['WPAD', 'MTA-STS', 'Admin', 'Admin', 'www 2']) {
      const answer = await registerClinic(t, { clinicName });
      expect(answer.result?.__typename, JSON.stringify(answer)).toBe('RegisterClinicSuccess');
      expect(answer.result?.clinic?.subdomain, clinicName).toMatch(GENERATED);
    }
  });

  it('an onboarding for "Autodiscover" or "ISATAP" gets a generated name', async () => {
    const admin = await t.superAdmin();
    const registered = await fetch(`${t.url}/api/v1/applications/register`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ app_name: 'Reserved names' }),
    });
    const key = ((await registered.json()) as { master_key: string }).master_key;
    for (const organization_name of ['Autodiscover', 'ISATAP']) {
      const response = await fetch(`${t.url}/api/v1/onboarding/start`, {
        method: 'POST',
        headers: { 'x-master-key': key, 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'it@example.com', organization_name }),
      });
      expect(response.status).toBe(201);
      expect(((await response.json()) as { subdomain: string }).subdomain).toMatch(GENERATED);
    }
  });
});
