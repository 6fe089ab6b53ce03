/**
 * The few DER (X.690) encodings a leaf certificate needs, and a reader of an element's children
 * (for the root's subject and a public key's bits). Every writer refuses, by throwing, a value it
 * cannot encode (a character outside its string type, a malformed OID, a negative length), so it
 * never emits bad DER. Decision 076 says why the leaf is written here and not by @peculiar/x509.
 */

/** An element's length octets: short form below 128, else long form (X.690 §8.1.3). */
export function derLength(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`bad DER length ${length}`);
  if (length < 0x80) return Buffer.from([length]);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Buffer.from([0x80 | octets.length, ...octets]);
}

/** Tag, length and content (one tag octet: universal, context-specific up to 30). */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? (content[0] as Buffer) : Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);

/** A SET of one element (a relative distinguished name): DER's sorting has nothing to sort. */
export const setOf = (item: Buffer): Buffer => tlv(0x31, item);

export const boolean = (value: boolean): Buffer => tlv(0x01, Buffer.from([value ? 0xff : 0x00]));

/**
 * A non-negative INTEGER from its big-endian magnitude: leading zero octets dropped, and a zero
 * octet prepended when the high bit is set, which would otherwise read as negative (§8.3).
 */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start += 1;
  const value = magnitude.subarray(start);
  if (value.length === 0) return tlv(0x02, Buffer.from([0]));
  return (value[0] as number) & 0x80 ? tlv(0x02, Buffer.from([0]), value) : tlv(0x02, value);
}

export function smallInteger(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`bad DER integer ${value}`);
  const octets: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return unsignedInteger(Buffer.from(octets));
}

/** An OBJECT IDENTIFIER from its dotted form (§8.19). */
export function objectIdentifier(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(dotted)) throw new RangeError(`bad OID ${dotted}`);
  const [first, second, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  if (first < 2 && second > 39) throw new RangeError(`bad OID ${dotted}`);
  const octets: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    if (!Number.isSafeInteger(arc)) throw new RangeError(`bad OID ${dotted}`);
    const base128 = [arc % 128];
    for (let high = Math.floor(arc / 128); high > 0; high = Math.floor(high / 128))
      base128.unshift(0x80 | (high % 128));
    octets.push(...base128);
  }
  return tlv(0x06, Buffer.from(octets));
}

export const octetString = (bytes: Buffer): Buffer => tlv(0x04, bytes);

/** A BIT STRING of whole octets, or with `unusedBits` of the last octet left out (§8.6). */
export function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits))
    throw new RangeError(`bad BIT STRING unused bits ${unusedBits}`);
  return tlv(0x03, Buffer.from([unusedBits]), bytes);
}

/** PrintableString's alphabet (X.680 §41.4). */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function printableString(value: string): Buffer {
  if (!PRINTABLE.test(value)) throw new RangeError('string outside PrintableString');
  return tlv(0x13, Buffer.from(value, 'latin1'));
}

export function isPrintable(value: string): boolean {
  return PRINTABLE.test(value);
}

export function utf8String(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  // A lone surrogate would become U+FFFD: a different string, so refused rather than changed.
  if (bytes.toString('utf8') !== value) throw new RangeError('string with a lone surrogate: not UTF-8');
  return tlv(0x0c, bytes);
}

/** IA5String is ASCII; `tag` lets a GeneralName's [2] dNSName (implicit) reuse it. */
export function ia5String(value: string, tag = 0x16): Buffer {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: IA5 is exactly U+0000–U+007F
  if (!/^[\x00-\x7f]*$/.test(value)) throw new RangeError('string outside IA5String (ASCII)');
  return tlv(tag, Buffer.from(value, 'latin1'));
}

/**
 * RFC 5280 §4.1.2.5: UTCTime (YYMMDDHHMMSSZ) through 2049, GeneralizedTime (YYYYMMDDHHMMSSZ)
 * from 2050; whole seconds, UTC. Years before 1950 or after 9999 have no encoding here.
 */
export function x509Time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || year < 1950 || year > 9999)
    throw new RangeError(`no X.509 time for ${date.toISOString?.() ?? date}`);
  const two = (n: number) => String(n).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(
    date.getUTCMinutes(),
  )}${two(date.getUTCSeconds())}Z`;
  return year < 2050
    ? tlv(0x17, Buffer.from(`${two(year % 100)}${rest}`, 'latin1'))
    : tlv(0x18, Buffer.from(`${year}${rest}`, 'latin1'));
}

/** `[n]` EXPLICIT: a constructed context-specific element around `inner`. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

/** One element read from `der` at `offset`: its tag, and where its content starts and ends. */
export interface DerElement {
  tag: number;
  /** The whole element, tag to end of content. */
  bytes: Buffer;
  content: Buffer;
}

export function readElement(der: Buffer, offset = 0): DerElement {
  const tag = der[offset];
  let first = der[offset + 1];
  if (tag === undefined || first === undefined || (tag & 0x1f) === 0x1f)
    throw new RangeError('truncated or unsupported DER');
  let length = first;
  let header = 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new RangeError('unsupported DER length');
    length = 0;
    for (let i = 0; i < count; i += 1) {
      first = der[offset + 2 + i];
      if (first === undefined) throw new RangeError('truncated DER');
      length = length * 256 + first;
    }
    header += count;
  }
  const end = offset + header + length;
  if (end > der.length) throw new RangeError('truncated DER');
  return { tag, bytes: der.subarray(offset, end), content: der.subarray(offset + header, end) };
}

/** The elements inside a constructed element's content. */
export function readChildren(content: Buffer): DerElement[] {
  const children: DerElement[] = [];
  for (let offset = 0; offset < content.length; ) {
    const child = readElement(content, offset);
    children.push(child);
    offset += child.bytes.length;
  }
  return children;
}
