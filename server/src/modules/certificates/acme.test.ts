/**
 * ACME issuance end to end: the app runs with CERT_PROVIDER=acme against a local fake CA
 * (server/test/fake-acme.ts), which validates each dns-01 challenge by asking the app's built-in
 * DNS server for the TXT record, as a real CA asks the zone's authoritative servers.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type PeerCertificate } from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { resolverFor } from '../../../test/dns-client.js';
import { startFakeAcme } from '../../../test/fake-acme.js';
import { startTestApp, tempDir, testLogger } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { acmeChallengeName, type DnsProvider } from '../dns/service.js';
import { acmeDirOf } from './acme.js';
import { AcmeCertificateIssuer, CertificateStore, type TlsCredentials } from './service.js';

const fake = await startFakeAcme({ dnsPort: () => t.dnsPort });
afterAll(() => fake.close());
const t = await startTestApp({
  CERT_PROVIDER: 'acme',
  ACME_EMAIL: 'ops@example.com',
  ACME_DIRECTORY_URL: fake.directoryUrl,
  CLINIC_POOL_SIZE: '0',
  CLINIC_HEALTH_INTERVAL_SECONDS: '0',
});
const issuer = t.app.deps.certificates;
const prisma = t.app.deps.db.prisma;
const zone = t.config.baseDomain;
const accountDir = acmeDirOf(t.config.dataDir);
const accountKeyFile = join(accountDir, 'account-key.pem');
const fresh = () => `acme-${randomBytes(5).toString('hex')}.${zone}`;

/** Another issuer on the app's database and DNS provider, as a second instance would build it. */
function issuerWith(overrides: { dns?: DnsProvider; accountDir?: string } = {}) {
  return new AcmeCertificateIssuer({
    store: new CertificateStore(prisma, t.config.encryptionKey),
    dns: overrides.dns ?? t.app.deps.dns,
    directoryUrl: fake.directoryUrl,
    email: 'ops@example.com',
    accountDir: overrides.accountDir ?? accountDir,
    logger: testLogger(t.config),
  });
}

/** The challenge TXT of `fqdn` is gone: from the DNS server's answers and from the table. */
async function expectNoChallengeRecord(fqdn: string) {
  await expect(resolverFor(t.dnsPort).resolveTxt(acmeChallengeName(fqdn))).rejects.toMatchObject({
    code: 'ENOTFOUND',
  });
  expect(await prisma.dnsRecord.count({ where: { name: acmeChallengeName(fqdn) } })).toBe(0);
}

/** Serves `credentials` over TLS and connects as a client trusting only `ca`, asking for `servername`. */
async function handshake(credentials: { key: string; cert: string }, servername: string, ca: string) {
  // Only key and cert: a server given `ca` too would complete its chain from it.
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

const withChain = (credentials: TlsCredentials) => ({
  key: credentials.key,
  cert: credentials.cert + credentials.ca,
});

describe('ACME issuance against a local CA', () => {
  it('issues a certificate once the CA has resolved the dns-01 TXT from the built-in DNS server', async () => {
    expect(issuer).toBeInstanceOf(AcmeCertificateIssuer);
    const fqdn = fresh();
    const ordersBefore = fake.orders.length;
    const issued = await issuer.ensureCertificate(fqdn.toUpperCase());

    const order = fake.orders.at(-1);
    expect(fake.orders).toHaveLength(ordersBefore + 1);
    expect(order).toMatchObject({ status: 'valid', identifiers: [{ type: 'dns', value: fqdn }] });
    expect(order?.authorizations.map((authz) => authz.status)).toEqual(['valid']);
    // The CA's own lookup found the value it computed; recomputed here from the token and the
    // account key in the data dir (RFC 8555 §8.4, thumbprint per RFC 7638).
    const token = order?.authorizations[0]?.challenges[0]?.token ?? '';
    const jwk = createPublicKey(createPrivateKey(readFileSync(accountKeyFile, 'utf8'))).export({
      format: 'jwk',
    }) as JWK;
    const digest = createHash('sha256')
      .update(`${token}.${await calculateJwkThumbprint(jwk, 'sha256')}`)
      .digest('base64url');
    expect(fake.dnsLookups.at(-1)).toEqual({
      name: `_acme-challenge.${fqdn}`,
      expected: digest,
      found: [digest],
      valid: true,
    });

    expect(issued).toMatchObject({ fqdn, issuer: 'acme', serialNumber: order?.serialNumber });
    const leaf = new x509.X509Certificate(issued.certificatePem);
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([
      { type: 'dns', value: fqdn },
    ]);
    expect(issued.chainPem.trim()).toBe(fake.intermediatePem.trim());
    const row = await prisma.certificate.findFirstOrThrow({ where: { fqdn, revokedAt: null } });
    expect(row).toMatchObject({ issuer: 'acme', serialNumber: leaf.serialNumber });
    expect(row.privateKeyEnc).not.toContain('PRIVATE KEY');

    await expectNoChallengeRecord(fqdn);
  });

  it('is trusted by node’s TLS with the CA’s root: the stored key matches, the chain links, the SAN is the name', async () => {
    const fqdn = fresh();
    await issuer.ensureCertificate(fqdn);
    const credentials = await issuer.tlsCredentials(fqdn);
    if (!credentials) throw new Error(`no credentials for ${fqdn}`);
    // Without the stored intermediate the leaf does not reach the root.
    await expect(
      handshake({ key: credentials.key, cert: credentials.cert }, fqdn, fake.rootPem),
    ).rejects.toMatchObject({
      code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/),
    });
    const ok = await handshake(withChain(credentials), fqdn, fake.rootPem);
    expect(ok.authorized).toBe(true);
    expect(ok.peer.subjectaltname).toBe(`DNS:${fqdn}`);
    expect(ok.peer.issuer.CN).toBe('Fake ACME Intermediate');
    await expect(handshake(withChain(credentials), `other.${zone}`, fake.rootPem)).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });

  it('returns the stored certificate without a new order, also to another instance', async () => {
    const fqdn = fresh();
    const first = await issuer.ensureCertificate(fqdn);
    const orders = fake.orders.length;
    expect((await issuer.ensureCertificate(fqdn)).serialNumber).toBe(first.serialNumber);
    expect((await issuerWith().ensureCertificate(fqdn)).serialNumber).toBe(first.serialNumber);
    expect(fake.orders).toHaveLength(orders);
    expect(await prisma.certificate.count({ where: { fqdn } })).toBe(1);
  });

  it('renews through a new order when under 30 days are left, superseding the old certificate', async () => {
    const fqdn = fresh();
    const first = await issuer.ensureCertificate(fqdn);
    await prisma.certificate.updateMany({
      where: { fqdn },
      data: { notAfter: new Date(Date.now() + 10 * 86_400_000) },
    });
    const orders = fake.orders.length;
    const renewed = await issuer.ensureCertificate(fqdn);
    expect(fake.orders).toHaveLength(orders + 1);
    expect(renewed.serialNumber).toBe(fake.orders.at(-1)?.serialNumber);
    expect(renewed.serialNumber).not.toBe(first.serialNumber);
    const old = await prisma.certificate.findFirstOrThrow({ where: { serialNumber: first.serialNumber } });
    expect(old.revokedAt).not.toBeNull();
  });

  it('fails cleanly when the CA finds another TXT value: nothing stored, no TXT left', async () => {
    const fqdn = fresh();
    fake.expectWrongDigest = true;
    try {
      await expect(issuer.ensureCertificate(fqdn)).rejects.toThrow(
        new RegExp(`ACME order for ${fqdn} failed: .*Incorrect TXT record`),
      );
    } finally {
      fake.expectWrongDigest = false;
    }
    // The record was published and seen by the CA, then removed.
    const lookup = fake.dnsLookups.at(-1);
    expect(lookup).toMatchObject({ name: `_acme-challenge.${fqdn}`, valid: false });
    expect(lookup?.found).toHaveLength(1);
    expect(lookup?.found).not.toContain(lookup?.expected);
    expect(fake.orders.at(-1)?.status).toBe('invalid');
    expect(fake.orders.at(-1)?.certificate).toBeUndefined();
    expect(await prisma.certificate.count({ where: { fqdn } })).toBe(0);
    await expectNoChallengeRecord(fqdn);
    // A later attempt, with the CA satisfied, succeeds.
    expect((await issuer.ensureCertificate(fqdn)).issuer).toBe('acme');
  });

  it('fails cleanly when the DNS provider publishes nothing: nothing stored, no TXT left', async () => {
    const dns = t.app.deps.dns;
    const silent: DnsProvider = {
      kind: dns.kind,
      publishSubdomain: (fqdn) => dns.publishSubdomain(fqdn),
      unpublishSubdomain: (fqdn) => dns.unpublishSubdomain(fqdn),
      records: (fqdn) => dns.records(fqdn),
      setTxt: async () => {},
      clearTxt: (fqdn) => dns.clearTxt(fqdn),
    };
    const fqdn = fresh();
    await expect(issuerWith({ dns: silent }).ensureCertificate(fqdn)).rejects.toThrow(
      new RegExp(`ACME order for ${fqdn} failed: .*No TXT record found at _acme-challenge.${fqdn}`),
    );
    expect(fake.dnsLookups.at(-1)).toMatchObject({
      name: `_acme-challenge.${fqdn}`,
      found: [],
      valid: false,
    });
    expect(await prisma.certificate.count({ where: { fqdn } })).toBe(0);
    await expectNoChallengeRecord(fqdn);
  });

  it('creates the account key once in its folder and reuses it, across instances', async () => {
    const key = readFileSync(accountKeyFile, 'utf8');
    expect(statSync(accountKeyFile).mode & 0o777).toBe(0o600);
    expect(statSync(accountDir).mode & 0o777).toBe(0o700);
    const accountsBefore = fake.accounts.length;
    // Another instance on the same data dir registers with the same key: the CA's existing account.
    await issuerWith().ensureCertificate(fresh());
    expect(readFileSync(accountKeyFile, 'utf8')).toBe(key);
    expect(fake.accounts).toHaveLength(accountsBefore);
    expect(fake.accounts).toHaveLength(1);
    expect(fake.accounts[0]?.contact).toEqual(['mailto:ops@example.com']);
    expect(new Set(fake.orders.map((order) => order.account))).toEqual(new Set([fake.accounts[0]?.url]));
    // A data dir without the key makes a new account (so the count above can tell).
    const elsewhere = join(tempDir('onramp-acme-other-'), 'acme');
    await issuerWith({ accountDir: elsewhere }).ensureCertificate(fresh());
    expect(fake.accounts).toHaveLength(2);
    expect(readFileSync(join(elsewhere, 'account-key.pem'), 'utf8')).not.toBe(key);
  });

  it('revokes at the CA and in the store', async () => {
    const fqdn = fresh();
    const issued = await issuer.ensureCertificate(fqdn);
    await issuer.revokeCertificate(fqdn);
    expect(fake.revoked).toContain(issued.serialNumber);
    expect(await issuer.tlsCredentials(fqdn)).toBeUndefined();
    await issuer.revokeCertificate(fqdn); // idempotent: nothing live, no CA call
    expect(fake.revoked.filter((serial) => serial === issued.serialNumber)).toHaveLength(1);
  });

  it('registerClinic’s ssl step orders the clinic’s certificate; deleteClinic revokes it at the CA', async () => {
    const { body } = await t.gql<{
      registerClinic: { __typename: string; clinic?: { id: string; subdomain: string } };
    }>(
      `mutation ($input: RegisterClinicInput!) {
        registerClinic(input: $input) {
          __typename
          ... on RegisterClinicSuccess { clinic { id subdomain } }
        }
      }`,
      {
        input: {
          clinicName: 'Clinique Acme',
          country: 'FR',
          adminEmail: `acme-${Date.now()}@example.com`,
          adminPassword: 'a sturdy passphrase 42',
          adminFirstName: 'Marie',
          adminLastName: 'Curie',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
    );
    expect(body.data?.registerClinic.__typename).toBe('RegisterClinicSuccess');
    const clinic = body.data?.registerClinic.clinic as { id: string; subdomain: string };
    const fqdn = `${clinic.subdomain}.${zone}`;
    const certificate = await prisma.certificate.findFirstOrThrow({ where: { fqdn, revokedAt: null } });
    expect(certificate.issuer).toBe('acme');
    expect(fake.orders.at(-1)).toMatchObject({
      status: 'valid',
      identifiers: [{ type: 'dns', value: fqdn }],
      serialNumber: certificate.serialNumber,
    });
    expect(fake.dnsLookups.at(-1)).toMatchObject({ name: `_acme-challenge.${fqdn}`, valid: true });
    await expectNoChallengeRecord(fqdn);

    const deleted = await t.gql(
      'mutation ($id: ID!) { deleteClinic(clinicId: $id) { __typename } }',
      { id: clinic.id },
      await t.superAdmin(),
    );
    expect(deleted.body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });
    expect(fake.revoked).toContain(certificate.serialNumber);
    expect(await prisma.certificate.count({ where: { fqdn, revokedAt: null } })).toBe(0);
  });
});
