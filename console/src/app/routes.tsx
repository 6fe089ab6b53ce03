/**
 * Every page of the console, in navigation order. Adding a page is adding an entry here (and its
 * folder under features/). `nav` puts it in the menu; `group: 'dev'` marks development tools.
 */
import type { ReactNode } from 'react';
import { AuditLogPage } from '../features/audit/AuditLogPage';
import { ClinicHealthTable } from '../features/clinics/ClinicHealthTable';
import { ClinicPage } from '../features/clinics/ClinicPage';
import { DevMailboxPage } from '../features/dev/DevMailboxPage';
import { DevSmsOutboxPage } from '../features/dev/DevSmsOutboxPage';
import { LiveFeedPage } from '../features/live/LiveFeedPage';
import { MetricsPage } from '../features/metrics/MetricsPage';
import { ApplicationsPage } from '../features/onboarding/ApplicationsPage';
import { OnboardingsPage } from '../features/onboarding/OnboardingsPage';

export interface PageDefinition {
  /** `/clinics/:id`-style pattern. */
  path: string;
  /** Document title. */
  title: string;
  nav?: { label: string; group: 'main' | 'dev' };
  render(params: Record<string, string>): ReactNode;
}

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
    path: '/metrics',
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
];

export const HOME = '/clinics';
