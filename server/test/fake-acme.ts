/**
 * A local ACME CA for tests (RFC 8555, the part acme-client's `auto()` uses with dns-01), on
 * 127.0.0.1 and a free port, over plain HTTP.
 *
 * It is strict where a real CA is: every POST is a flattened JWS (`application/jose+json`)
 * whose signature is verified (with `jose`) against the account's key, whose `url` is the URL
 * posted to and whose nonce is one it handed out and not used yet (else `badNonce`). A dns-01
 * challenge is validated for real: the fake asks the DNS server on `dnsPort` (Onramp's built-in
 * one) for the TXT records of `_acme-challenge.<name>` and compares them with
 * base64url(sha256(token + "." + JWK thumbprint of the account key)), the thumbprint computed
 * here (RFC 7638) from the key the account registered with. Finalize checks the CSR's signature
 * and that its names are the order's, then signs a 90-day leaf for the CSR's key with a test CA
 * (root → intermediate → leaf); the download is the PEM chain leaf + intermediate.
 *
 * Not a real CA's timing: a challenge is validated while its POST is answered and finalize
 * issues at once, so acme-client's status polls (5 s apart) find a final status on their first
 * look and tests do not wait.
 */
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { calculateJwkThumbprint, flattenedVerify, importJWK, type JWK } from 'jose';
import { resolverFor } from './dns-client.js';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256'];

type Status = 'pending' | 'ready' | 'processing' | 'valid' | 'invalid' | 'deactivated';

interface Problem {
  type: string;
  detail: string;
  status: number;
}

export interface FakeAccount {
  url: string;
  jwk: JWK;
  /** RFC 7638 SHA-256 thumbprint of `jwk`, base64url. */
  thumbprint: string;
  contact: string[];
}

export interface FakeChallenge {
  url: string;
  type: 'dns-01';
  token: string;
  status: Status;
  validated?: string;
  error?: Problem;
}

export interface FakeAuthorization {
  url: string;
  identifier: { type: 'dns'; value: string };
  status: Status;
  expires: string;
  challenges: FakeChallenge[];
}

export interface FakeOrder {
  url: string;
  account: string;
  status: Status;
  expires: string;
  identifiers: { type: 'dns'; value: string }[];
  authorizations: FakeAuthorization[];
  finalize: string;
  certificate?: string;
  error?: Problem;
  /** The issued chain (leaf + intermediate), PEM. */
  chainPem?: string;
  serialNumber?: string;
}

/** One dns-01 validation: what the fake asked, what it expected, what the DNS server answered. */
export interface DnsLookup {
  name: string;
  expected: string;
  /** TXT values found (each record's strings joined); empty for NXDOMAIN / no TXT. */
  found: string[];
  valid: boolean;
}

export interface FakeAcme {
  /** `http://127.0.0.1:<port>/directory`, for ACME_DIRECTORY_URL. */
  directoryUrl: string;
  /** The test CA's root certificate, PEM: what a TLS client trusts. */
  rootPem: string;
  /** The intermediate that signs leaves, PEM (sent in every chain). */
  intermediatePem: string;
  /** Every account registered, oldest first. */
  accounts: FakeAccount[];
  /** Every order placed, oldest first. */
  orders: FakeOrder[];
  dnsLookups: DnsLookup[];
  /** Serial numbers revoked through revokeCert. */
  revoked: string[];
  /**
   * When true, challenges are validated against a wrong digest, as a CA holding another key
   * thumbprint would: the TXT record is found but never matches.
   */
  expectWrongDigest: boolean;
  close(): Promise<void>;
}

export interface FakeAcmeOptions {
  /**
   * Port of the DNS server (on 127.0.0.1) answering for the names to validate; a function when
   * it is known only after the fake has started (an app started with the fake's URL).
   */
  dnsPort: number | (() => number);
}

export async function startFakeAcme(options: FakeAcmeOptions): Promise<FakeAcme> {
  const ca = await createTestCa();
  const nonces = new Set<string>();
  const accounts: FakeAccount[] = [];
  const orders: FakeOrder[] = [];
  const dnsLookups: DnsLookup[] = [];
  const revoked: string[] = [];
  let nextId = 1;
  let base = '';
  const newId = () => String(nextId++);

  const fake: FakeAcme = {
    directoryUrl: '',
    rootPem: ca.root.toString('pem'),
    intermediatePem: ca.intermediate.toString('pem'),
    accounts,
    orders,
    dnsLookups,
    revoked,
    expectWrongDigest: false,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };

  const nonce = () => {
    const value = randomBytes(16).toString('base64url');
    nonces.add(value);
    return value;
  };

  function send(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
    contentType = 'application/json',
  ) {
    res.writeHead(status, {
      'Replay-Nonce': nonce(),
      Link: `<${base}/directory>;rel="index"`,
      'Cache-Control': 'no-store',
      ...(body === undefined ? {} : { 'Content-Type': contentType }),
      ...headers,
    });
    res.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  }

  function problem(res: ServerResponse, status: number, type: string, detail: string) {
    const doc: Problem = { type: `urn:ietf:params:acme:error:${type}`, detail, status };
    send(res, status, doc, {}, 'application/problem+json');
  }

  const findOrder = (url: string) => orders.find((order) => order.url === url);
  const findAuthz = (url: string) =>
    orders.flatMap((order) => order.authorizations).find((authz) => authz.url === url);
  const orderOfAuthz = (authz: FakeAuthorization) =>
    orders.find((order) => order.authorizations.includes(authz));
  const findChallenge = (url: string) => {
    for (const order of orders)
      for (const authz of order.authorizations)
        for (const challenge of authz.challenges)
          if (challenge.url === url) return { order, authz, challenge };
    return undefined;
  };

  const orderJson = (order: FakeOrder) => ({
    status: order.status,
    expires: order.expires,
    identifiers: order.identifiers,
    authorizations: order.authorizations.map((authz) => authz.url),
    finalize: order.finalize,
    ...(order.certificate ? { certificate: order.certificate } : {}),
    ...(order.error ? { error: order.error } : {}),
  });
  const challengeJson = ({ url, type, token, status, validated, error }: FakeChallenge) => ({
    url,
    type,
    token,
    status,
    ...(validated ? { validated } : {}),
    ...(error ? { error } : {}),
  });
  const authzJson = (authz: FakeAuthorization) => ({
    identifier: authz.identifier,
    status: authz.status,
    expires: authz.expires,
    challenges: authz.challenges.map(challengeJson),
  });
  const accountJson = (account: FakeAccount) => ({
    status: 'valid',
    contact: account.contact,
    orders: `${account.url}/orders`,
  });

  /** RFC 8555 §8.4: the TXT value proving control of the account key for `token`. */
  const dns01Digest = (token: string, thumbprint: string) =>
    createHash('sha256').update(`${token}.${thumbprint}`).digest('base64url');

  async function validate(order: FakeOrder, authz: FakeAuthorization, challenge: FakeChallenge) {
    const account = accounts.find((candidate) => candidate.url === order.account);
    if (!account) throw new Error(`order ${order.url} without an account`);
    const name = `_acme-challenge.${authz.identifier.value}`;
    const expected = dns01Digest(
      fake.expectWrongDigest ? `${challenge.token}-wrong` : challenge.token,
      account.thumbprint,
    );
    const port = typeof options.dnsPort === 'function' ? options.dnsPort() : options.dnsPort;
    let found: string[] = [];
    let failure: Problem | undefined;
    try {
      found = (await resolverFor(port).resolveTxt(name)).map((chunks) => chunks.join(''));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTFOUND' && code !== 'ENODATA') {
        failure = {
          type: 'urn:ietf:params:acme:error:dns',
          detail: `DNS problem: ${code} looking up TXT for ${name}`,
          status: 400,
        };
      }
    }
    const valid = !failure && found.includes(expected);
    dnsLookups.push({ name, expected, found, valid });
    challenge.validated = new Date().toISOString();
    if (valid) {
      challenge.status = 'valid';
      authz.status = 'valid';
      if (order.authorizations.every((each) => each.status === 'valid')) order.status = 'ready';
      return;
    }
    challenge.status = 'invalid';
    challenge.error = failure ?? {
      type: 'urn:ietf:params:acme:error:unauthorized',
      detail:
        found.length === 0
          ? `No TXT record found at ${name}`
          : `Incorrect TXT record ${JSON.stringify(found)} found at ${name}`,
      status: 403,
    };
    authz.status = 'invalid';
    order.status = 'invalid';
    order.error = challenge.error;
  }

  async function finalize(res: ServerResponse, order: FakeOrder, payload: { csr?: string }) {
    if (order.status !== 'ready') {
      return problem(res, 403, 'orderNotReady', `order is ${order.status}, not ready`);
    }
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(Buffer.from(payload.csr ?? '', 'base64url'));
    } catch {
      return problem(res, 400, 'badCSR', 'the CSR does not parse');
    }
    if (!(await csr.verify())) return problem(res, 400, 'badCSR', 'the CSR signature does not verify');
    const san = csr.extensions.find(
      (extension): extension is x509.SubjectAlternativeNameExtension =>
        extension instanceof x509.SubjectAlternativeNameExtension,
    );
    const sanNames = (san?.names.toJSON() ?? []).filter((n) => n.type === 'dns').map((n) => n.value);
    const requested = [...new Set([...csr.subjectName.getField('CN'), ...sanNames])].sort();
    const ordered = order.identifiers.map((identifier) => identifier.value).sort();
    if (JSON.stringify(requested) !== JSON.stringify(ordered)) {
      return problem(res, 400, 'badCSR', `CSR names ${requested} are not the order's ${ordered}`);
    }
    const now = Date.now();
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: `CN=${ordered[0]}`,
      issuer: ca.intermediate.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 90 * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      publicKey: csr.publicKey,
      signingKey: ca.intermediateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(ordered.map((value) => ({ type: 'dns' as const, value }))),
        await x509.AuthorityKeyIdentifierExtension.create(ca.intermediate.publicKey),
      ],
    });
    order.serialNumber = leaf.serialNumber;
    order.chainPem = `${leaf.toString('pem')}\n${ca.intermediate.toString('pem')}\n`;
    order.certificate = `${base}/cert/${order.url.split('/').pop()}`;
    order.status = 'valid';
    send(res, 200, orderJson(order), { Location: order.url });
  }

  async function handlePost(req: IncomingMessage, res: ServerResponse, url: string, path: string) {
    if (req.headers['content-type'] !== 'application/jose+json') {
      return problem(res, 415, 'malformed', 'Content-Type must be application/jose+json');
    }
    const body = await readBody(req);
    let jws: { protected: string; payload: string; signature: string };
    let header: { alg?: string; nonce?: string; url?: string; jwk?: JWK; kid?: string };
    try {
      jws = JSON.parse(body);
      header = JSON.parse(Buffer.from(jws.protected, 'base64url').toString('utf8'));
    } catch {
      return problem(res, 400, 'malformed', 'the body is not a flattened JWS');
    }
    if (!header.nonce || !nonces.delete(header.nonce)) {
      return problem(res, 400, 'badNonce', 'unknown or used nonce');
    }
    if (header.url !== url) return problem(res, 401, 'unauthorized', `JWS url ${header.url} is not ${url}`);
    if (!header.alg || !ALGORITHMS.includes(header.alg)) {
      return problem(res, 400, 'badSignatureAlgorithm', `unsupported alg ${header.alg}`);
    }
    // RFC 8555 §6.2: newAccount carries the key itself, every other request the account URL
    // (revokeCert signed with the certificate's own key is not supported: Onramp does not use it).
    const byJwk = path === '/new-account';
    if (byJwk ? !header.jwk || header.kid : !header.kid || header.jwk) {
      return problem(res, 400, 'malformed', byJwk ? 'newAccount needs jwk, not kid' : 'needs kid, not jwk');
    }
    const account = header.kid ? accounts.find((candidate) => candidate.url === header.kid) : undefined;
    if (header.kid && !account) return problem(res, 400, 'accountDoesNotExist', `no account ${header.kid}`);
    const jwk = header.jwk ?? (account as FakeAccount).jwk;
    let payloadText: string;
    try {
      const verified = await flattenedVerify(jws, await importJWK(jwk, header.alg), {
        algorithms: ALGORITHMS,
      });
      payloadText = new TextDecoder().decode(verified.payload);
    } catch (error) {
      return problem(res, 400, 'malformed', `JWS signature does not verify: ${(error as Error).message}`);
    }
    // An empty payload is a POST-as-GET (RFC 8555 §6.3).
    let payload: Record<string, unknown> | undefined;
    try {
      payload = payloadText === '' ? undefined : JSON.parse(payloadText);
    } catch {
      return problem(res, 400, 'malformed', 'the payload is not JSON');
    }

    if (path === '/new-account') {
      const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
      const existing = accounts.find((candidate) => candidate.thumbprint === thumbprint);
      if (existing) return send(res, 200, accountJson(existing), { Location: existing.url });
      if (payload?.onlyReturnExisting === true) {
        return problem(res, 400, 'accountDoesNotExist', 'no account for this key');
      }
      if (payload?.termsOfServiceAgreed !== true) {
        return problem(res, 403, 'userActionRequired', 'the terms of service must be agreed to');
      }
      const created: FakeAccount = {
        url: `${base}/acct/${newId()}`,
        jwk,
        thumbprint,
        contact: (payload.contact as string[] | undefined) ?? [],
      };
      accounts.push(created);
      return send(res, 201, accountJson(created), { Location: created.url });
    }
    const caller = account as FakeAccount;
    if (path.startsWith('/acct/')) {
      if (url !== caller.url) return problem(res, 403, 'unauthorized', 'not your account');
      if (Array.isArray(payload?.contact)) caller.contact = payload.contact as string[];
      return send(res, 200, accountJson(caller));
    }
    if (path === '/new-order') {
      const identifiers = (payload?.identifiers ?? []) as { type: string; value: string }[];
      if (identifiers.length === 0 || identifiers.some((identifier) => identifier.type !== 'dns')) {
        return problem(res, 400, 'rejectedIdentifier', 'only dns identifiers');
      }
      const id = newId();
      const expires = new Date(Date.now() + 7 * DAY_MS).toISOString();
      const order: FakeOrder = {
        url: `${base}/order/${id}`,
        account: caller.url,
        status: 'pending',
        expires,
        identifiers: identifiers.map(({ value }) => ({ type: 'dns', value: value.toLowerCase() })),
        authorizations: [],
        finalize: `${base}/finalize/${id}`,
      };
      order.authorizations = order.identifiers.map((identifier) => {
        const authzId = newId();
        return {
          url: `${base}/authz/${authzId}`,
          identifier,
          status: 'pending',
          expires,
          challenges: [
            {
              url: `${base}/chall/${authzId}`,
              type: 'dns-01',
              token: randomBytes(32).toString('base64url'),
              status: 'pending',
            },
          ],
        };
      });
      orders.push(order);
      return send(res, 201, orderJson(order), { Location: order.url });
    }
    if (path.startsWith('/order/')) {
      const order = findOrder(url);
      if (!order) return problem(res, 404, 'malformed', 'no such order');
      if (order.account !== caller.url) return problem(res, 403, 'unauthorized', 'not your order');
      return send(res, 200, orderJson(order));
    }
    if (path.startsWith('/authz/')) {
      const authz = findAuthz(url);
      const order = authz && orderOfAuthz(authz);
      if (!authz || !order) return problem(res, 404, 'malformed', 'no such authorization');
      if (order.account !== caller.url) return problem(res, 403, 'unauthorized', 'not your authorization');
      if (payload?.status === 'deactivated') {
        authz.status = 'deactivated';
        order.status = 'invalid';
      }
      return send(res, 200, authzJson(authz));
    }
    if (path.startsWith('/chall/')) {
      const found = findChallenge(url);
      if (!found) return problem(res, 404, 'malformed', 'no such challenge');
      const { order, authz, challenge } = found;
      if (order.account !== caller.url) return problem(res, 403, 'unauthorized', 'not your challenge');
      // A POST of {} asks the CA to validate (RFC 8555 §7.5.1); POST-as-GET only reads.
      if (payload && challenge.status === 'pending') await validate(order, authz, challenge);
      return send(res, 200, challengeJson(challenge), { Link: `<${authz.url}>;rel="up"` });
    }
    if (path.startsWith('/finalize/')) {
      const order = orders.find((candidate) => candidate.finalize === url);
      if (!order) return problem(res, 404, 'malformed', 'no such order');
      if (order.account !== caller.url) return problem(res, 403, 'unauthorized', 'not your order');
      return finalize(res, order, (payload ?? {}) as { csr?: string });
    }
    if (path.startsWith('/cert/')) {
      const order = orders.find((candidate) => candidate.certificate === url);
      if (!order?.chainPem) return problem(res, 404, 'malformed', 'no such certificate');
      if (order.account !== caller.url) return problem(res, 403, 'unauthorized', 'not your certificate');
      return send(res, 200, order.chainPem, {}, 'application/pem-certificate-chain');
    }
    if (path === '/revoke-cert') {
      let serial: string;
      try {
        serial = new x509.X509Certificate(Buffer.from(String(payload?.certificate), 'base64url'))
          .serialNumber;
      } catch {
        return problem(res, 400, 'malformed', 'the certificate does not parse');
      }
      const order = orders.find((candidate) => candidate.serialNumber === serial);
      if (!order) return problem(res, 404, 'malformed', 'not a certificate of this CA');
      if (order.account !== caller.url) return problem(res, 403, 'unauthorized', 'not your certificate');
      if (revoked.includes(serial)) return problem(res, 400, 'alreadyRevoked', 'already revoked');
      revoked.push(serial);
      return send(res, 200, undefined);
    }
    return problem(res, 404, 'malformed', `no resource ${path}`);
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', base).pathname;
    const url = `${base}${path}`;
    const handle = async () => {
      if (path === '/directory' && req.method === 'GET') {
        return send(res, 200, {
          newNonce: `${base}/new-nonce`,
          newAccount: `${base}/new-account`,
          newOrder: `${base}/new-order`,
          revokeCert: `${base}/revoke-cert`,
          keyChange: `${base}/key-change`,
          meta: { termsOfService: `${base}/terms` },
        });
      }
      if (path === '/new-nonce' && (req.method === 'HEAD' || req.method === 'GET')) {
        // RFC 8555 §7.2: 200 to HEAD, 204 to GET.
        return send(res, req.method === 'HEAD' ? 200 : 204, undefined);
      }
      if (req.method === 'POST') return handlePost(req, res, url, path);
      return problem(res, 405, 'malformed', `${req.method} ${path} is not served`);
    };
    handle().catch((error: unknown) => {
      if (!res.headersSent) problem(res, 500, 'serverInternal', (error as Error).message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.directoryUrl = `${base}/directory`;
  return fake;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Root and intermediate of the fake CA, ECDSA P-256, made fresh for each fake. */
async function createTestCa() {
  const now = Date.now();
  const rootKeys = (await crypto.subtle.generateKey(KEY_ALGORITHM, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: 'CN=Fake ACME Root, O=Onramp tests',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys: rootKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const intermediateKeys = (await crypto.subtle.generateKey(KEY_ALGORITHM, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: 'CN=Fake ACME Intermediate, O=Onramp tests',
    issuer: root.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: intermediateKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(intermediateKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  return { root, intermediate, intermediateKey: intermediateKeys.privateKey };
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}
