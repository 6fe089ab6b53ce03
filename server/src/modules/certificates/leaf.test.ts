/**
 * The built-in CA's leaf as DER (decision 076): what node, OpenSSL and @peculiar/x509 read in it,
 * and that it holds exactly what @peculiar/x509 wrote before for the same fields.
 */
import { spawnSync } from 'node:child_process';
import { createECDH, createPrivateKey, createPublicKey, webcrypto, X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/harness.js';
import { issueLeaf, LEAF_VALIDITY_DAYS, loadOrCreateAuthority } from './builtin.js';
import {
  bitString,
  derLength,
  ia5String,
  objectIdentifier,
  printableString,
  readChildren,
  readElement,
  unsignedInteger,
  utf8String,
  x509Time,
} from './der.js';
import { MAX_DNS_NAME_LENGTH, p256PrivateKeyInfo, p256PublicKeyInfo } from './leaf.js';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);
const zone = 'clinics.example.test';
const caDir = join(tempDir('onramp-leaf-'), 'ca');
const ca = await loadOrCreateAuthority(caDir, zone);
const root = new X509Certificate(ca.rootPem);
const DAY_MS = 86_400_000;

/** Every character a subdomain label may hold, and the longest names DNS allows. */
const ALL_CHARACTERS = `a-0123456789-bcdefghijklmnopqrstuvwxyz.${zone}`;
const LONGEST_LABEL = `${'a1-'.repeat(20)}xyz.${zone}`; // 63 characters before the zone
const label = (length: number) => `${'b'.repeat(length - 1)}9`;
const LONGEST_NAME = [label(63), label(63), label(63), label(61)].join('.');

/** Today's leaf before decision 076, from the same fields: @peculiar/x509 as builtin.ts called it. */
async function peculiarLeaf(leaf: X509Certificate, fqdn: string): Promise<x509.X509Certificate> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const caKey = await crypto.subtle.importKey(
    'pkcs8',
    x509.PemConverter.decodeFirst(readFileSync(join(caDir, 'ca-key.pem'), 'utf8')),
    algorithm,
    false,
    ['sign'],
  );
  const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  const publicKey = await crypto.subtle.importKey('spki', spki, algorithm, true, ['verify']);
  const peculiarRoot = new x509.X509Certificate(ca.rootPem);
  return x509.X509CertificateGenerator.create({
    serialNumber: leaf.serialNumber.toLowerCase(),
    subject: `CN=${fqdn}`,
    issuer: peculiarRoot.subjectName,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: fqdn }]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(peculiarRoot.publicKey),
    ],
  });
}

const tbsOf = (der: Buffer | ArrayBuffer) =>
  readChildren(readElement(Buffer.from(der as ArrayBuffer)).content)[0]?.bytes;

const opensslVersion = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const hasOpenssl = opensslVersion.status === 0;
if (!hasOpenssl) console.warn('openssl is not on this machine: the `openssl verify` test is skipped');

describe('a built-in leaf written as DER', () => {
  for (const [what, fqdn] of [
    ['a subdomain', `smile-dental.${zone}`],
    ['every allowed character', ALL_CHARACTERS],
    ['the longest label', LONGEST_LABEL],
    [`the longest name (${MAX_DNS_NAME_LENGTH})`, LONGEST_NAME],
  ] as const) {
    it(`for ${what}: node reads it, the root verifies it, and it holds what @peculiar/x509 wrote`, async () => {
      const { issued, privateKeyPem } = await issueLeaf(ca, fqdn);
      const leaf = new X509Certificate(issued.certificatePem);
      expect(leaf.verify(root.publicKey)).toBe(true);
      expect(leaf.checkIssued(root)).toBe(true);
      expect(leaf.checkHost(fqdn)).toBe(fqdn);
      expect(leaf.checkHost(`other.${zone}`)).toBeUndefined();
      expect(leaf.checkPrivateKey(createPrivateKey(privateKeyPem))).toBe(true);
      expect(leaf.ca).toBe(false);
      expect(leaf.subject).toBe(`CN=${fqdn}`);
      expect(leaf.issuer).toBe(root.subject);
      expect(leaf.subjectAltName).toBe(`DNS:${fqdn}`);
      expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // node's keyUsage is the EKU list

      // Serial: 128 bits, positive, as stored.
      expect(leaf.serialNumber.toLowerCase()).toBe(issued.serialNumber);
      expect(issued.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
      // Validity: whole seconds, backdated 5 minutes, 90 days, as stored.
      expect(new Date(leaf.validFrom)).toEqual(issued.notBefore);
      expect(new Date(leaf.validTo)).toEqual(issued.notAfter);
      expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBe(
        LEAF_VALIDITY_DAYS * DAY_MS + 5 * 60_000,
      );
      expect(issued.notBefore.getTime() % 1000).toBe(0);
      expect(Date.now() - issued.notBefore.getTime()).toBeGreaterThanOrEqual(5 * 60_000 - 1000);

      // The same certificate @peculiar/x509 makes from these fields, byte for byte up to the
      // signature (ECDSA's is randomised), and the same extensions decoded.
      const before = await peculiarLeaf(leaf, fqdn);
      expect(tbsOf(leaf.raw)?.toString('hex')).toBe(tbsOf(before.rawData)?.toString('hex'));
      const decoded = (pem: string) =>
        new x509.X509Certificate(pem).extensions.map((extension) => ({
          type: extension.type,
          critical: extension.critical,
          value: Buffer.from(extension.value).toString('hex'),
          text: extension.toString('text'),
        }));
      expect(decoded(issued.certificatePem)).toEqual(decoded(before.toString('pem')));
      expect(decoded(issued.certificatePem).map((e) => [e.type, e.critical])).toEqual([
        ['2.5.29.19', true],
        ['2.5.29.15', true],
        ['2.5.29.37', false],
        ['2.5.29.17', false],
        ['2.5.29.14', false],
        ['2.5.29.35', false],
      ]);
      // The authority key identifier is the root's own subject key identifier.
      const rootSki = new x509.X509Certificate(ca.rootPem).getExtension(x509.SubjectKeyIdentifierExtension);
      const aki = new x509.X509Certificate(issued.certificatePem).getExtension(
        x509.AuthorityKeyIdentifierExtension,
      );
      expect(aki?.keyId).toBe(rootSki?.keyId);
      // PEM as @peculiar/x509 wrote it (and the stored rows hold).
      expect(issued.certificatePem).toBe(new x509.X509Certificate(issued.certificatePem).toString('pem'));
    });
  }

  it.skipIf(!hasOpenssl)('is accepted by `openssl verify -CAfile root.pem` for its name', async () => {
    const dir = tempDir('onramp-leaf-openssl-');
    writeFileSync(join(dir, 'root.pem'), ca.rootPem);
    for (const fqdn of [`smile-dental.${zone}`, ALL_CHARACTERS, LONGEST_NAME]) {
      const { issued } = await issueLeaf(ca, fqdn);
      writeFileSync(join(dir, 'leaf.pem'), issued.certificatePem);
      const args = ['verify', '-CAfile', join(dir, 'root.pem'), '-purpose', 'sslserver'];
      const ok = spawnSync('openssl', [...args, '-verify_hostname', fqdn, join(dir, 'leaf.pem')], {
        encoding: 'utf8',
      });
      expect(ok.stdout.trim(), ok.stderr).toBe(`${join(dir, 'leaf.pem')}: OK`);
      const wrongName = spawnSync(
        'openssl',
        [...args, '-verify_hostname', `x.${zone}`, join(dir, 'leaf.pem')],
        {
          encoding: 'utf8',
        },
      );
      expect(wrongName.status).not.toBe(0);
    }
  });

  it('refuses a name it cannot encode as a DNS name, or a serial RFC 5280 forbids, instead of writing it', () => {
    for (const fqdn of [
      `under_score.${zone}`,
      `é.${zone}`,
      `-leading.${zone}`,
      `trailing-.${zone}`,
      `two..dots.${zone}`,
      `${'a'.repeat(64)}.${zone}`,
      `${LONGEST_NAME}x`,
      `space here.${zone}`,
      '',
    ]) {
      expect(() => issueLeaf(ca, fqdn), fqdn).toThrow(RangeError);
    }
    const ecdh = createECDH('prime256v1');
    const fields = (serialNumber: Buffer) => ({
      serialNumber,
      notBefore: new Date(),
      notAfter: new Date(Date.now() + DAY_MS),
      dnsName: `serial.${zone}`,
      publicKey: p256PublicKeyInfo(ecdh.generateKeys()),
    });
    for (const bad of [Buffer.alloc(0), Buffer.alloc(4), Buffer.alloc(21, 1), Buffer.alloc(20, 0x80)])
      expect(() => ca.leaves.toBeSigned(fields(bad)), bad.toString('hex')).toThrow(RangeError);
    for (const good of [Buffer.alloc(20, 0x7f), Buffer.concat([Buffer.alloc(3), Buffer.alloc(20, 0x7f)])])
      expect(() => ca.leaves.toBeSigned(fields(good))).not.toThrow();
  });

  it('encodes a P-256 key pair as node (SPKI) and WebCrypto (PKCS #8, the stored keys) did', async () => {
    const pairs: { scalar: Buffer; point: Buffer }[] = [];
    for (let short = 0; pairs.length < 20 || short === 0; ) {
      const ecdh = createECDH('prime256v1');
      const point = ecdh.generateKeys();
      const scalar = ecdh.getPrivateKey();
      // ECDH drops a scalar's leading zero octets (1 key in 256): keep one such key, at least.
      if (scalar.length < 32) short += 1;
      if (pairs.length < 20 || (scalar.length < 32 && short === 1)) pairs.push({ scalar, point });
    }
    expect(pairs.some(({ scalar }) => scalar.length < 32)).toBe(true);
    for (const { scalar, point } of pairs) {
      const jwk = {
        kty: 'EC',
        crv: 'P-256',
        x: point.subarray(1, 33).toString('base64url'),
        y: point.subarray(33).toString('base64url'),
        d: Buffer.concat([Buffer.alloc(32 - scalar.length), scalar]).toString('base64url'),
      };
      const reference = createPrivateKey({ key: jwk, format: 'jwk' });
      expect(p256PublicKeyInfo(point).toString('hex')).toBe(
        createPublicKey(reference).export({ type: 'spki', format: 'der' }).toString('hex'),
      );
      const imported = await crypto.subtle.importKey(
        'jwk',
        jwk,
        { name: 'ECDSA', namedCurve: 'P-256' },
        true,
        ['sign'],
      );
      const pkcs8 = p256PrivateKeyInfo(scalar, point);
      expect(pkcs8.toString('hex')).toBe(
        Buffer.from(await crypto.subtle.exportKey('pkcs8', imported)).toString('hex'),
      );
      expect(
        createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' }),
      ).toEqual(reference.export({ format: 'jwk' }));
    }
    const { scalar, point } = pairs[0] as { scalar: Buffer; point: Buffer };
    expect(() => p256PublicKeyInfo(point.subarray(1))).toThrow(RangeError);
    expect(() => p256PublicKeyInfo(Buffer.concat([Buffer.from([0x02]), point.subarray(1)]))).toThrow(
      RangeError,
    );
    expect(() => p256PrivateKeyInfo(Buffer.alloc(0), point)).toThrow(RangeError);
    expect(() => p256PrivateKeyInfo(Buffer.concat([Buffer.from([1]), scalar]), point)).toThrow(RangeError);
  });

  it('refuses a CA whose key is not the root’s', async () => {
    const other = join(tempDir('onramp-leaf-other-'), 'ca');
    await loadOrCreateAuthority(other, zone);
    renameSync(join(other, 'ca-key.pem'), join(other, 'ca-key.pem.bak'));
    writeFileSync(join(other, 'ca-key.pem'), readFileSync(join(caDir, 'ca-key.pem')));
    await expect(loadOrCreateAuthority(other, zone)).rejects.toThrow('ca-key.pem is not the key of ca.pem');
  });
});

describe('the DER writer', () => {
  const hex = (b: Buffer) => b.toString('hex');

  it('writes lengths short and long', () => {
    expect(hex(derLength(0))).toBe('00');
    expect(hex(derLength(127))).toBe('7f');
    expect(hex(derLength(128))).toBe('8180');
    expect(hex(derLength(256))).toBe('820100');
    expect(() => derLength(-1)).toThrow(RangeError);
    expect(() => derLength(1.5)).toThrow(RangeError);
  });

  it('writes a positive INTEGER with its sign octet, without leading zeros', () => {
    expect(hex(unsignedInteger(Buffer.from('7f', 'hex')))).toBe('02017f');
    expect(hex(unsignedInteger(Buffer.from('80', 'hex')))).toBe('02020080');
    expect(hex(unsignedInteger(Buffer.from('000001', 'hex')))).toBe('020101');
    expect(hex(unsignedInteger(Buffer.from('0080', 'hex')))).toBe('02020080');
    expect(hex(unsignedInteger(Buffer.alloc(0)))).toBe('020100');
  });

  it('writes OIDs, and refuses malformed ones', () => {
    expect(hex(objectIdentifier('1.2.840.10045.4.3.2'))).toBe('06082a8648ce3d040302');
    expect(hex(objectIdentifier('2.5.29.17'))).toBe('0603551d11');
    for (const bad of ['3.1', '1', '1.40', '1.2.03', '1..2', 'x'])
      expect(() => objectIdentifier(bad), bad).toThrow(RangeError);
  });

  it('writes UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)', () => {
    expect(x509Time(new Date('2049-12-31T23:59:59.999Z')).toString('latin1')).toBe('\x17\x0d491231235959Z');
    expect(x509Time(new Date('2050-01-01T00:00:00Z')).toString('latin1')).toBe('\x18\x0f20500101000000Z');
    expect(x509Time(new Date('1950-01-01T00:00:00Z')).toString('latin1')).toBe('\x17\x0d500101000000Z');
    expect(() => x509Time(new Date('1949-12-31T23:59:59Z'))).toThrow(RangeError);
    expect(() => x509Time(new Date(Number.NaN))).toThrow(RangeError);
  });

  it('refuses strings outside their type', () => {
    expect(hex(printableString("Az09 '()+,-./:=?"))).toBe(
      `1310${Buffer.from("Az09 '()+,-./:=?").toString('hex')}`,
    );
    for (const bad of ['a*b', 'a_b', 'é', 'a@b', 'a\nb'])
      expect(() => printableString(bad), bad).toThrow(RangeError);
    expect(() => ia5String('é')).toThrow(RangeError);
    expect(hex(ia5String('a.b', 0x82))).toBe('8203612e62');
    expect(hex(utf8String('é'))).toBe('0c02c3a9');
    expect(() => utf8String('\ud800')).toThrow(RangeError);
    expect(() => bitString(Buffer.from([0x80]), 8)).toThrow(RangeError);
  });

  it('reads back what it wrote, and refuses truncated DER', () => {
    const element = readElement(Buffer.concat([ia5String('x'.repeat(300)), Buffer.from([0])]));
    expect(element.content.toString()).toBe('x'.repeat(300));
    expect(element.bytes.length).toBe(304);
    expect(() => readElement(Buffer.from('0405aabb', 'hex'))).toThrow(RangeError);
    expect(() => readElement(Buffer.from('04', 'hex'))).toThrow(RangeError);
  });
});
