/**
 * Every page of the console, in navigation order. Adding a page is adding an entry here (and its
 * folder under features/). `nav` puts it in the menu; `group: 'dev'` marks development tools;
 * `public` pages render without a session (the e-mail verification link, sign-in).
 *
 * No path may shadow a server route (SERVER_ROUTES): a reload or a bookmark of a console page
 * must reach the console, not Prometheus or the API. console/src/app/routes.test.ts checks it.
 */
import type { ReactNode } from 'react';
import { AuditLogPage } from '../features/audit/AuditLogPage';
import { VerifyEmailPage } from '../features/auth/VerifyEmailPage';
import { ClinicHealthTable } from '../features/clinics/ClinicHealthTable';
import { ClinicPage } from '../features/clinics/ClinicPage';
import { DevMailboxPage } from '../features/dev/DevMailboxPage';
import { DevSmsOutboxPage } from '../features/dev/DevSmsOutboxPage';
import { LiveFeedPage } from '../features/live/LiveFeedPage';
import { RunPage } from '../features/live/RunPage';
import { MetricsPage } from '../features/metrics/MetricsPage';
import { ApplicationsPage } from '../features/onboarding/ApplicationsPage';
import { OnboardingsPage } from '../features/onboarding/OnboardingsPage';
import { RolloutsPage } from '../features/rollouts/RolloutsPage';

export interface PageDefinition {
  /** `/clinics/:id`-style pattern. */
  path: string;
  /** Document title. */
  title: string;
  nav?: { label: string; group: 'main' | 'dev' };
  /** Rendered with or without a session (App handles `/sign-in` itself). */
  public?: boolean;
  render(params: Record<string, string>): ReactNode;
}

/** Paths the server answers itself (server/src/app.ts); console pages must stay clear of them. */
export const SERVER_ROUTES = ['/graphql', '/api', '/healthz', '/readyz', '/metrics', '/__yoga_health'];

export const SIGN_IN_PATH = '/sign-in';

export const PAGES: PageDefinition[] = [
  {
    path: '/clinics',
    title: 'Clinics',
    nav: { label: 'Clinics', group: 'main' },
    render: () => <ClinicHealthTable />,
  },
  {
    path: '/clinics/:id',
    title: 'Clinic',
    render: ({ id }) => <ClinicPage key={id} id={id as string} />,
  },
  {
    path: '/live',
    title: 'Live provisioning',
    nav: { label: 'Live feed', group: 'main' },
    render: () => <LiveFeedPage />,
  },
  {
    path: '/runs/:id',
    title: 'Provisioning run',
    render: ({ id }) => <RunPage key={id} id={id as string} />,
  },
  {
    // Not /metrics: that is Prometheus' endpoint on the same server.
    path: '/provisioning-metrics',
    title: 'Metrics',
    nav: { label: 'Metrics', group: 'main' },
    render: () => <MetricsPage />,
  },
  {
    path: '/applications',
    title: 'Applications',
    nav: { label: 'Applications', group: 'main' },
    render: () => <ApplicationsPage />,
  },
  {
    path: '/onboardings',
    title: 'Onboardings',
    nav: { label: 'Onboardings', group: 'main' },
    render: () => <OnboardingsPage />,
  },
  {
    path: '/rollouts',
    title: 'Rollouts',
    nav: { label: 'Rollouts', group: 'main' },
    render: () => <RolloutsPage />,
  },
  {
    path: '/audit',
    title: 'Audit log',
    nav: { label: 'Audit log', group: 'main' },
    render: () => <AuditLogPage />,
  },
  {
    path: '/dev/mailbox',
    title: 'Dev mailbox',
    nav: { label: 'Mailbox', group: 'dev' },
    render: () => <DevMailboxPage />,
  },
  {
    path: '/dev/sms',
    title: 'SMS outbox',
    nav: { label: 'SMS outbox', group: 'dev' },
    render: () => <DevSmsOutboxPage />,
  },
  {
    // The link of the verification e-mail (the server hands this path to the console).
    path: '/verify-email',
    title: 'Confirm your e-mail',
    public: true,
    render: () => <VerifyEmailPage />,
  },
];

/** Every path the console owns, patterns included: what a reload must bring back to the console. */
export const CONSOLE_PATHS = ['/', SIGN_IN_PATH, ...PAGES.map((page) => page.path)];

export const HOME = '/clinics';
