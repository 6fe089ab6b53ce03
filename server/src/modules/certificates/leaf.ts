/**
 * The built-in CA's leaf certificate written as DER (decision 076). What is the same for every
 * leaf (the issuer's name as the root encodes it, the signature algorithm, the fixed extensions
 * and the authority key identifier) is encoded once per CA; per leaf only the serial, the
 * validity, the name (subject and SAN), the public key and its identifier. The content is what
 * @peculiar/x509 wrote before, field by field (leaf.test.ts compares them).
 */
import { createHash } from 'node:crypto';
import {
  bitString,
  boolean,
  explicit,
  ia5String,
  isPrintable,
  objectIdentifier,
  octetString,
  printableString,
  readChildren,
  readElement,
  sequence,
  setOf,
  smallInteger,
  tlv,
  unsignedInteger,
  utf8String,
  x509Time,
} from './der.js';

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extendedKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
} as const;

/** RFC 1035 §2.3.4 and RFC 1123 §2.1: letters, digits and inner hyphens, 63 a label, 253 in all. */
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
export const MAX_DNS_NAME_LENGTH = 253;

export interface LeafFields {
  /** The serial's magnitude, big-endian (RFC 5280 §4.1.2.2: positive, at most 20 octets). */
  serialNumber: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** The DNS name the leaf is for: its subject's common name and its only SAN. */
  dnsName: string;
  /** The leaf's public key, SubjectPublicKeyInfo DER ({@link p256PublicKeyInfo}). */
  publicKey: Buffer;
}

export class LeafTemplate {
  private readonly issuerName: Buffer;
  private readonly signatureAlgorithm = sequence(objectIdentifier(OID.ecdsaWithSha256));
  private readonly version = explicit(0, smallInteger(2)); // v3
  /** Basic constraints (critical, not a CA), key usage (critical, digitalSignature), EKU serverAuth. */
  private readonly leadingExtensions: Buffer;
  private readonly authorityKeyIdentifier: Buffer;

  /** @param rootDer the root certificate, DER: leaves name its subject and its key as their issuer. */
  constructor(rootDer: Buffer) {
    const [tbs] = readChildren(readElement(rootDer).content);
    if (!tbs) throw new RangeError('the root certificate has no TBSCertificate');
    const fields = readChildren(tbs.content);
    const at = fields[0]?.tag === 0xa0 ? 1 : 0; // version [0] is optional
    const subject = fields[at + 4];
    const spki = fields[at + 5];
    if (subject?.tag !== 0x30 || spki?.tag !== 0x30) throw new RangeError('unreadable root certificate');
    // The root's subject byte for byte, so a verifier's name match cannot fail on re-encoding.
    this.issuerName = Buffer.from(subject.bytes);
    this.leadingExtensions = Buffer.concat([
      extension(OID.basicConstraints, true, sequence()), // cA DEFAULT FALSE is omitted in DER
      extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature (bit 0)
      extension(OID.extendedKeyUsage, false, sequence(objectIdentifier(OID.serverAuth))),
    ]);
    // keyIdentifier [0] IMPLICIT: the root's key identifier, as its own SKI extension holds it.
    this.authorityKeyIdentifier = extension(
      OID.authorityKeyIdentifier,
      false,
      sequence(tlv(0x80, keyIdentifier(spki.bytes))),
    );
  }

  /** The TBSCertificate to sign with the root's key (ECDSA with SHA-256). */
  toBeSigned(leaf: LeafFields): Buffer {
    const name = checkDnsName(leaf.dnsName);
    const serial = leaf.serialNumber.subarray(leaf.serialNumber.findIndex((octet) => octet !== 0));
    if (
      !serial.some((octet) => octet !== 0) ||
      serial.length > 20 ||
      ((serial[0] as number) & 0x80 && serial.length === 20)
    )
      throw new RangeError('a serial number is positive and at most 20 octets (RFC 5280 §4.1.2.2)');
    return sequence(
      this.version,
      unsignedInteger(serial),
      this.signatureAlgorithm,
      this.issuerName,
      sequence(x509Time(leaf.notBefore), x509Time(leaf.notAfter)),
      sequence(setOf(sequence(objectIdentifier(OID.commonName), directoryString(name)))),
      leaf.publicKey,
      explicit(
        3,
        sequence(
          this.leadingExtensions,
          extension(OID.subjectAltName, false, sequence(ia5String(name, 0x82))), // dNSName [2]
          extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(leaf.publicKey))),
          this.authorityKeyIdentifier,
        ),
      ),
    );
  }

  /** The certificate: `tbs`, its algorithm, and the signature (DER ECDSA-Sig-Value, as X.509 has it). */
  certificate(tbs: Buffer, signature: Buffer): Buffer {
    return sequence(tbs, this.signatureAlgorithm, bitString(signature));
  }
}

/**
 * RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits, what @peculiar/x509 computed
 * (and the root's SKI holds).
 */
export function keyIdentifier(spki: Buffer): Buffer {
  const bits = readChildren(readElement(spki).content)[1];
  if (bits?.tag !== 0x03 || bits.content[0] !== 0) throw new RangeError('unreadable public key');
  return createHash('sha1').update(bits.content.subarray(1)).digest();
}

const P256_ALGORITHM = sequence(objectIdentifier(OID.ecPublicKey), objectIdentifier(OID.prime256v1));
const P256_SCALAR_LENGTH = 32;

/**
 * The P-256 public key as SubjectPublicKeyInfo DER from its uncompressed point (65 octets, as
 * `ECDH.generateKeys()` returns it): what `KeyObject.export({ type: 'spki' })` returns, byte for
 * byte, without the ~0.1 ms OpenSSL's encoder takes (decision 076).
 */
export function p256PublicKeyInfo(point: Buffer): Buffer {
  return sequence(P256_ALGORITHM, bitString(checkPoint(point)));
}

/**
 * The P-256 private key as PKCS #8 DER from its scalar and point: the ECPrivateKey with its public
 * key and no repeated curve parameters, as WebCrypto's `exportKey('pkcs8')` wrote the keys stored
 * so far. A scalar with leading zero octets (`ECDH.getPrivateKey()` drops them, 1 key in 256) is
 * padded to its 32 octets, as RFC 5915 §3 requires.
 */
export function p256PrivateKeyInfo(scalar: Buffer, point: Buffer): Buffer {
  if (scalar.length === 0 || scalar.length > P256_SCALAR_LENGTH)
    throw new RangeError('not a P-256 private key');
  const padded = Buffer.concat([Buffer.alloc(P256_SCALAR_LENGTH - scalar.length), scalar]);
  const ecPrivateKey = sequence(
    smallInteger(1),
    octetString(padded),
    explicit(1, bitString(checkPoint(point))),
  );
  return sequence(smallInteger(0), P256_ALGORITHM, octetString(ecPrivateKey));
}

function checkPoint(point: Buffer): Buffer {
  if (point.length !== 1 + 2 * P256_SCALAR_LENGTH || point[0] !== 0x04)
    throw new RangeError('not an uncompressed P-256 point');
  return point;
}

/** DER as PEM, 64 columns, no final newline (as @peculiar/x509 wrote it, and the stored rows are). */
export function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return [`-----BEGIN ${label}-----`, ...lines, `-----END ${label}-----`].join('\n');
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(objectIdentifier(oid), boolean(true), octetString(value))
    : sequence(objectIdentifier(oid), octetString(value)); // critical DEFAULT FALSE is omitted
}

/** PrintableString when the alphabet allows (every DNS name), else UTF8String, as @peculiar chose. */
function directoryString(value: string): Buffer {
  return isPrintable(value) ? printableString(value) : utf8String(value);
}

function checkDnsName(name: string): string {
  if (name.length > MAX_DNS_NAME_LENGTH || !name.split('.').every((label) => LABEL.test(label)))
    throw new RangeError(`not a DNS name a certificate can hold: ${JSON.stringify(name.slice(0, 300))}`);
  return name;
}
