import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type PeerCertificate } from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import acmeClient from 'acme-client';
import { describe, expect, it } from 'vitest';
import { resolverFor } from '../../../test/dns-client.js';
import { startTestApp, tempDir, testConfig } from '../../../test/harness.js';
import { ConfigError, loadConfig } from '../../env.js';
import { createLogger } from '../../logger.js';
import { BuiltinDnsProvider } from '../dns/builtin.js';
import { createCertificateIssuer, dns01Hooks, LEAF_VALIDITY_DAYS, loadOrCreateAuthority } from './service.js';

const dataDir = tempDir('onramp-certs-');
const t = await startTestApp({ ONRAMP_DATA_DIR: dataDir });
const zone = t.config.baseDomain;
const issuer = t.app.deps.certificates;
const prisma = t.app.deps.db.prisma;
const caPem = () => readFileSync(join(dataDir, 'ca', 'ca.pem'), 'utf8');
const fresh = () => `tls-${randomBytes(5).toString('hex')}.${zone}`;
const DAY_MS = 86_400_000;

/** Serves `fqdn`'s certificate over TLS and connects as a client trusting `ca`, asking for `servername`. */
async function handshake(fqdn: string, servername: string, ca: string) {
  const credentials = await issuer.tlsCredentials(fqdn);
  if (!credentials) throw new Error(`no certificate for ${fqdn}`);
  const server = createServer({ key: credentials.key, cert: credentials.cert }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<{ authorized: boolean; peer: PeerCertificate }>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername, ca }, () => {
        resolve({ authorized: socket.authorized, peer: socket.getPeerCertificate() });
        socket.end();
      });
      socket.on('error', reject);
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('the built-in certificate authority', () => {
  it('creates its CA once in the data dir, key mode 0600', async () => {
    await issuer.ensureCertificate(fresh());
    const root = new x509.X509Certificate(caPem());
    expect(root.subject).toContain(`CN=Onramp CA for ${zone}`);
    expect(await root.isSelfSigned()).toBe(true);
    expect(root.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(true);
    expect(statSync(join(dataDir, 'ca', 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'ca')).mode & 0o777).toBe(0o700);
    // Loading again reads the same files.
    expect((await loadOrCreateAuthority(join(dataDir, 'ca'), zone)).rootPem).toBe(caPem());
  });

  it('issues a ~90-day leaf for the name, signed by the root, and stores it once', async () => {
    const fqdn = fresh();
    const issued = await issuer.ensureCertificate(fqdn.toUpperCase());
    expect(issued).toMatchObject({ fqdn, issuer: 'builtin', chainPem: caPem() });
    const leaf = new x509.X509Certificate(issued.certificatePem);
    expect(leaf.serialNumber).toBe(issued.serialNumber);
    expect(leaf.subject).toBe(`CN=${fqdn}`);
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([
      { type: 'dns', value: fqdn },
    ]);
    expect(leaf.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    const days = (leaf.notAfter.getTime() - Date.now()) / DAY_MS;
    expect(days).toBeGreaterThan(LEAF_VALIDITY_DAYS - 1);
    expect(days).toBeLessThanOrEqual(LEAF_VALIDITY_DAYS);
    expect(await leaf.verify({ publicKey: new x509.X509Certificate(caPem()).publicKey })).toBe(true);
    // Idempotent: the stored certificate comes back.
    expect((await issuer.ensureCertificate(fqdn)).serialNumber).toBe(issued.serialNumber);
    const rows = await prisma.certificate.findMany({ where: { fqdn } });
    expect(rows).toHaveLength(1);
    expect(rows[0]?.privateKeyEnc).toMatch(/^v1\./);
    expect(rows[0]?.privateKeyEnc).not.toContain('PRIVATE KEY');
  });

  it('is trusted by node’s TLS for its name, and only for its name and only with this root', async () => {
    const fqdn = fresh();
    await issuer.ensureCertificate(fqdn);
    const ok = await handshake(fqdn, fqdn, caPem());
    expect(ok.authorized).toBe(true);
    expect(ok.peer.subjectaltname).toBe(`DNS:${fqdn}`);
    await expect(handshake(fqdn, `other.${zone}`, caPem())).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
    const otherCa = await loadOrCreateAuthority(join(tempDir('onramp-other-ca-'), 'ca'), zone);
    await expect(handshake(fqdn, fqdn, otherCa.rootPem)).rejects.toMatchObject({
      code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/),
    });
  });

  it('gives concurrent callers one certificate', async () => {
    const fqdn = fresh();
    const issued = await Promise.all([1, 2, 3, 4].map(() => issuer.ensureCertificate(fqdn)));
    expect(new Set(issued.map((c) => c.serialNumber)).size).toBe(1);
    expect(await prisma.certificate.count({ where: { fqdn } })).toBeLessThanOrEqual(4);
    expect(await prisma.certificate.count({ where: { fqdn, revokedAt: null } })).toBe(1);
  });

  /** A name whose certificate has 10 days left: due for renewal. */
  async function closeToExpiry() {
    const fqdn = fresh();
    const first = await issuer.ensureCertificate(fqdn);
    await prisma.certificate.updateMany({
      where: { fqdn },
      data: { notAfter: new Date(Date.now() + 10 * DAY_MS) },
    });
    return { fqdn, first };
  }

  it('renews a certificate close to expiry, superseding the old one', async () => {
    const { fqdn, first } = await closeToExpiry();
    const renewed = await issuer.ensureCertificate(fqdn);
    expect(renewed.serialNumber).not.toBe(first.serialNumber);
    const old = await prisma.certificate.findFirstOrThrow({ where: { serialNumber: first.serialNumber } });
    expect(old.revokedAt).not.toBeNull();
  });

  it('gives concurrent callers renewing a certificate close to expiry one new certificate', async () => {
    const { fqdn, first } = await closeToExpiry();
    const renewed = await Promise.all([1, 2, 3, 4].map(() => issuer.ensureCertificate(fqdn)));
    expect(new Set(renewed.map((c) => c.serialNumber)).size).toBe(1);
    expect(renewed[0]?.serialNumber).not.toBe(first.serialNumber);
    expect(await prisma.certificate.count({ where: { fqdn, revokedAt: null } })).toBe(1);
  });

  it('revokes idempotently; a new certificate can be issued afterwards', async () => {
    const fqdn = fresh();
    const first = await issuer.ensureCertificate(fqdn);
    await issuer.revokeCertificate(fqdn);
    await issuer.revokeCertificate(fqdn);
    await issuer.revokeCertificate(`never-issued.${zone}`);
    expect(await issuer.tlsCredentials(fqdn)).toBeUndefined();
    expect(await prisma.certificate.count({ where: { fqdn, revokedAt: null } })).toBe(0);
    const second = await issuer.ensureCertificate(fqdn);
    expect(second.serialNumber).not.toBe(first.serialNumber);
  });
});

describe('a restart', () => {
  it('reuses the CA and the stored certificates, and still answers DNS records', async () => {
    const fqdn = fresh();
    await t.app.deps.dns.publishSubdomain(fqdn);
    const issued = await issuer.ensureCertificate(fqdn);
    const root = caPem();
    await t.app.stop();
    const again = await startTestApp({ ONRAMP_DATA_DIR: dataDir, DATABASE_URL: t.config.databaseUrl });
    expect(again.dnsPort).not.toBe(undefined);
    expect(await resolverFor(again.dnsPort).resolve4(fqdn)).toEqual(['127.0.0.1']);
    expect((await again.app.deps.certificates.ensureCertificate(fqdn)).serialNumber).toBe(
      issued.serialNumber,
    );
    const newName = fresh();
    const later = await again.app.deps.certificates.ensureCertificate(newName);
    expect(caPem()).toBe(root);
    expect(later.chainPem).toBe(root);
    const credentials = await again.app.deps.certificates.tlsCredentials(newName);
    expect(credentials?.key).toContain('PRIVATE KEY');
    await again.app.stop(); // before the file's database is dropped
  });
});

describe('ACME', () => {
  it('is chosen by CERT_PROVIDER=acme, which needs ACME_EMAIL (and a DNS server to answer challenges)', () => {
    const base = {
      ONRAMP_ENV: 'test',
      ONRAMP_DATA_DIR: dataDir,
      JWT_SECRET: 'x'.repeat(40),
      ENCRYPTION_KEY: '22'.repeat(32),
    };
    expect(() => loadConfig({ ...base, CERT_PROVIDER: 'acme', DNS_PORT: '0' })).toThrow(ConfigError);
    try {
      loadConfig({ ...base, CERT_PROVIDER: 'acme', DNS_PORT: '0' });
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        'ACME_EMAIL: required when CERT_PROVIDER=acme',
        'DNS_PORT: CERT_PROVIDER=acme with the built-in DNS provider needs the DNS server (not 0)',
      ]);
    }
    const config = testConfig({ CERT_PROVIDER: 'acme', ACME_EMAIL: 'Ops@Example.com' });
    expect(config.acme).toEqual({
      directoryUrl: 'https://acme-staging-v02.api.letsencrypt.org/directory',
      email: 'ops@example.com',
    });
    const acme = createCertificateIssuer(config, prisma, t.app.deps.dns, createLogger(config));
    expect(acme.kind).toBe('acme');
    expect(createCertificateIssuer(testConfig(), prisma, t.app.deps.dns, createLogger(config)).kind).toBe(
      'builtin',
    );
  });

  it('fails cleanly when the ACME directory is unreachable, storing nothing', async () => {
    const config = testConfig({
      CERT_PROVIDER: 'acme',
      ACME_EMAIL: 'ops@example.com',
      ACME_DIRECTORY_URL: 'http://127.0.0.1:9/directory', // discard port: connection refused
    });
    // An app of its own: the file's first app was stopped by the restart test above, and the
    // store reads through its pg pool (decision 070), which a stopped app has ended.
    const running = await startTestApp();
    const db = running.app.deps.db.prisma;
    const acme = createCertificateIssuer(config, db, running.app.deps.dns, createLogger(config));
    const fqdn = fresh();
    // acme-client retries refused connections for over a minute (5 × growing 5 s waits): not here.
    const settings = acmeClient.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } };
    const retries = settings.acmeSettings.retryMaxAttempts;
    settings.acmeSettings.retryMaxAttempts = 0;
    try {
      await expect(acme.ensureCertificate(fqdn)).rejects.toThrow(`ACME order for ${fqdn} failed`);
    } finally {
      settings.acmeSettings.retryMaxAttempts = retries;
    }
    expect(await db.certificate.count({ where: { fqdn } })).toBe(0);
    await expect(acme.revokeCertificate(fqdn)).resolves.toBeUndefined(); // nothing live: no CA call
    // The account key was created once, private.
    expect(statSync(join(config.dataDir, 'acme', 'account-key.pem')).mode & 0o777).toBe(0o600);
  });

  it('publishes the dns-01 challenge through the DNS provider, answered by the built-in server, then removes it', async () => {
    const running = await startTestApp();
    const dns = running.app.deps.dns;
    expect(dns).toBeInstanceOf(BuiltinDnsProvider);
    const hooks = dns01Hooks(dns);
    const fqdn = fresh();
    const authz = { identifier: { type: 'dns', value: fqdn } } as never;
    const challenge = {
      type: 'dns-01',
      url: 'https://acme.invalid/chall/1',
      status: 'pending',
      token: 't',
    } as never;
    await hooks.challengeCreateFn(authz, challenge, 'dns01-digest-value');
    const resolver = resolverFor(running.dnsPort);
    expect(await resolver.resolveTxt(`_acme-challenge.${fqdn}`)).toEqual([['dns01-digest-value']]);
    await hooks.challengeRemoveFn(authz, challenge, 'dns01-digest-value');
    await expect(resolver.resolveTxt(`_acme-challenge.${fqdn}`)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const http01 = {
      type: 'http-01',
      url: 'https://acme.invalid/chall/2',
      status: 'pending',
      token: 't',
    } as never;
    await expect(hooks.challengeCreateFn(authz, http01, 'x')).rejects.toThrow(
      /unsupported ACME challenge http-01/,
    );
    expect(hooks.challengePriority).toEqual(['dns-01']);
  });
});
