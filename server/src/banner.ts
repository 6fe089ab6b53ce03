/**
 * The development start banner (docs/decisions/020): where the console and GraphiQL are, and a
 * one-time sign-in link for ONRAMP_ADMIN_EMAIL. Written to standard output by main.ts, never
 * through the logger (logs are shipped and kept; this link signs a super-admin in).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CentralPrisma } from './db/database.js';
import type { Config } from './env.js';
import { SIGN_IN_LINK_TTL_MS, SignInLinks, signInLinkUrl } from './modules/auth/sign-in-links.js';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const WILDCARD = new Set(['0.0.0.0', '[::]']);

/**
 * The URL a browser on this machine opens: PUBLIC_URL's origin when it names this listener by a
 * loopback name (mail links use it: a verification link opened from the mailbox then lands in the
 * same origin, with the same session, as the console the banner opened), else the listener's, a
 * wildcard one reached through localhost.
 */
export function browserUrl(listeningUrl: string, publicUrl?: string): string {
  const url = new URL(listeningUrl);
  if (publicUrl) {
    const wanted = new URL(publicUrl);
    const same =
      wanted.protocol === url.protocol &&
      wanted.port === url.port &&
      LOOPBACK.has(wanted.hostname) &&
      (LOOPBACK.has(url.hostname) || WILDCARD.has(url.hostname));
    if (same) return wanted.origin;
  }
  if (WILDCARD.has(url.hostname)) url.hostname = 'localhost';
  return url.origin;
}

export interface BannerInput {
  url: string;
  adminEmail: string;
  /** Absent when no link could be issued (the banner says why). */
  signInUrl?: string;
  problem?: string;
  /** Whether a built console is served at `url` (else `pnpm dev` serves it on :5173). */
  consoleBuilt: boolean;
}

export function formatBanner(input: BannerInput): string {
  const minutes = Math.round(SIGN_IN_LINK_TTL_MS / 60_000);
  const lines = [
    '',
    '  Onramp is running (development)',
    '',
    `  Console    ${input.url}/${input.consoleBuilt ? '' : '   (not built: pnpm dev serves it on http://localhost:5173)'}`,
    `  GraphiQL   ${input.url}/graphql`,
  ];
  if (input.signInUrl) {
    lines.push(
      `  Sign in    ${input.signInUrl}`,
      `             as ${input.adminEmail}; works once, for ${minutes} minutes; a new one at each start`,
    );
  } else {
    lines.push(`  Sign in    no link this time (${input.problem ?? 'unknown problem'}); use an e-mail code`);
  }
  return `${lines.join('\n')}\n\n`;
}

/** Issues the sign-in link and writes the banner to standard output. Development only. */
export async function printDevelopmentBanner(
  deps: { config: Config; prisma: CentralPrisma; consoleDir: string },
  listeningUrl: string,
  write: (text: string) => void = (text) => process.stdout.write(text),
): Promise<void> {
  if (deps.config.env !== 'development') return;
  const url = browserUrl(listeningUrl, deps.config.publicUrl);
  const consoleBuilt = existsSync(join(deps.consoleDir, 'index.html'));
  let signInUrl: string | undefined;
  let problem: string | undefined;
  try {
    const link = await new SignInLinks({ config: deps.config, prisma: deps.prisma }).issueForAdmin();
    signInUrl = signInLinkUrl(consoleBuilt ? url : 'http://localhost:5173', link.token);
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  }
  write(formatBanner({ url, adminEmail: deps.config.adminEmail, signInUrl, problem, consoleBuilt }));
}
