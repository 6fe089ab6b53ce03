/**
 * DNS through Cloudflare's records API (`/zones/{zone}/dns_records`): list by name, create,
 * update, delete, each answered in a `{ success, errors, result }` envelope. Rate limits (429)
 * and server errors (5xx), network failures and timeouts are retried with exponential backoff;
 * anything else fails at once. Messages carry Cloudflare's error codes, never the token.
 */
import type { Logger } from '../../logger.js';
import {
  ADDRESS_TYPES,
  acmeChallengeName,
  type DnsProvider,
  type DnsRecord,
  type DnsRecordType,
  type Ingress,
  ingressRecords,
  normaliseName,
  TXT_TTL,
} from './provider.js';

export interface CloudflareOptions {
  apiToken: string;
  zoneId: string;
  /** @default https://api.cloudflare.com/client/v4 */
  apiUrl: string;
  ingress: Ingress;
  logger: Logger;
  /** Per request. @default 10000 */
  timeoutMs?: number;
  /** Tries in all for retryable failures. @default 4 */
  maxAttempts?: number;
  /** First backoff; each next one doubles, with jitter. @default 250 */
  backoffMs?: number;
}

interface CloudflareRecord {
  id: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
}

interface Envelope<T> {
  success: boolean;
  errors?: { code: number; message: string }[];
  result: T;
}

export class CloudflareError extends Error {
  override name = 'CloudflareError';
  constructor(
    message: string,
    /** HTTP status, when there was an answer. */
    readonly status: number | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export class CloudflareDnsProvider implements DnsProvider {
  readonly kind = 'cloudflare' as const;

  constructor(private readonly options: CloudflareOptions) {}

  async publishSubdomain(fqdn: string): Promise<DnsRecord[]> {
    const name = normaliseName(fqdn);
    const wanted = ingressRecords(name, this.options.ingress);
    const existing = (await this.list(name)).filter((record) =>
      (ADDRESS_TYPES as readonly string[]).includes(record.type),
    );
    const unused = [...existing];
    for (const record of wanted) {
      const same = unused.findIndex((r) => r.type === record.type && r.content === record.value);
      if (same >= 0) {
        const [kept] = unused.splice(same, 1);
        if (kept && kept.ttl !== record.ttl) await this.update(kept.id, record);
        continue;
      }
      // Reuse a record of the same type pointing elsewhere (an ingress change): one update, no gap.
      const stale = unused.findIndex((r) => r.type === record.type);
      if (stale >= 0) {
        const [old] = unused.splice(stale, 1);
        if (old) await this.update(old.id, record);
        continue;
      }
      // A CNAME cannot coexist with A/AAAA: clear the other kind before creating.
      for (const conflicting of unused.filter((r) => (record.type === 'CNAME') !== (r.type === 'CNAME'))) {
        await this.remove(conflicting.id);
        unused.splice(unused.indexOf(conflicting), 1);
      }
      await this.create(record);
    }
    for (const record of unused) await this.remove(record.id);
    return wanted;
  }

  async unpublishSubdomain(fqdn: string): Promise<void> {
    const name = normaliseName(fqdn);
    for (const owner of [name, acmeChallengeName(name)]) {
      for (const record of await this.list(owner)) await this.remove(record.id);
    }
  }

  async setTxt(fqdn: string, values: string[]): Promise<void> {
    const name = normaliseName(fqdn);
    const wanted = new Set(values);
    const existing = await this.list(name, 'TXT');
    for (const record of existing) {
      const value = unquote(record.content);
      if (wanted.has(value)) wanted.delete(value);
      else await this.remove(record.id);
    }
    for (const value of wanted) await this.create({ name, type: 'TXT', value, ttl: TXT_TTL });
  }

  async clearTxt(fqdn: string): Promise<void> {
    for (const record of await this.list(normaliseName(fqdn), 'TXT')) await this.remove(record.id);
  }

  async records(fqdn: string): Promise<DnsRecord[]> {
    const name = normaliseName(fqdn);
    return (await this.list(name)).map((record) => ({
      name,
      type: record.type as DnsRecordType,
      value: record.content,
      ttl: record.ttl,
    }));
  }

  private async list(name: string, type?: DnsRecordType): Promise<CloudflareRecord[]> {
    const query = new URLSearchParams({ name, per_page: '100' });
    if (type) query.set('type', type);
    const records = await this.request<CloudflareRecord[]>('GET', `/dns_records?${query}`);
    // The filter is exact on Cloudflare; checking again costs nothing and guards a fake or a proxy.
    return records.filter((record) => normaliseName(record.name) === name);
  }

  private create(record: DnsRecord): Promise<CloudflareRecord> {
    return this.request('POST', '/dns_records', body(record));
  }

  private update(id: string, record: DnsRecord): Promise<CloudflareRecord> {
    return this.request('PUT', `/dns_records/${encodeURIComponent(id)}`, body(record));
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.request('DELETE', `/dns_records/${encodeURIComponent(id)}`);
    } catch (error) {
      // Already gone (a concurrent unpublish, or a retry after a lost answer): done.
      if (error instanceof CloudflareError && error.status === 404) return;
      throw error;
    }
  }

  private async request<T>(method: string, path: string, payload?: unknown): Promise<T> {
    const { maxAttempts = 4, backoffMs = 250 } = this.options;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.once<T>(method, path, payload);
      } catch (error) {
        const retryable = error instanceof CloudflareError && error.retryable;
        if (!retryable || attempt >= maxAttempts) throw error;
        const delay = backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random());
        this.options.logger.warn(
          { method, path: path.split('?')[0], attempt, delayMs: Math.round(delay), err: error },
          'Cloudflare request failed; retrying',
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async once<T>(method: string, path: string, payload?: unknown): Promise<T> {
    const { apiUrl, zoneId, apiToken, timeoutMs = 10_000 } = this.options;
    const url = `${apiUrl}/zones/${encodeURIComponent(zoneId)}${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${apiToken}`,
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: payload === undefined ? undefined : JSON.stringify(payload),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      throw new CloudflareError(
        timedOut
          ? `Cloudflare ${method} timed out after ${timeoutMs} ms`
          : `Cloudflare ${method} failed: network error`,
        undefined,
        true,
      );
    }
    const retryable = response.status === 429 || response.status >= 500;
    let envelope: Envelope<T> | undefined;
    try {
      envelope = (await response.json()) as Envelope<T>;
    } catch {
      envelope = undefined;
    }
    if (response.ok && envelope?.success === true) return envelope.result;
    const errors = (envelope?.errors ?? []).map((error) => `${error.code}: ${error.message}`).join('; ');
    throw new CloudflareError(
      `Cloudflare ${method} answered ${response.status}${errors ? ` (${errors})` : ''}`,
      response.status,
      retryable,
    );
  }
}

function body(record: DnsRecord) {
  const fields = { type: record.type, name: record.name, content: record.value, ttl: record.ttl };
  // Not proxied: the names must resolve to the ingress itself, which holds their certificates.
  return record.type === 'TXT' ? fields : { ...fields, proxied: false };
}

/** Cloudflare may return TXT content wrapped in double quotes. */
function unquote(content: string): string {
  return content.length >= 2 && content.startsWith('"') && content.endsWith('"')
    ? content.slice(1, -1)
    : content;
}
