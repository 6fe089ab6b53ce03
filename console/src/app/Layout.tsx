import { useEffect, useRef } from 'react';
import type { SessionUser } from '../auth/session';
import { useProvisioningFeed } from '../features/live/ProvisioningFeed';
import { formatTime } from '../ui/format';
import { describeOutage, useConnection } from './connection';
import { Link, matchPath, navigate, useLocation } from './router';
import { HOME, PAGES } from './routes';

export function Layout({ user, onSignOut }: { user: SessionUser; onSignOut: () => void }) {
  const { pathname } = useLocation();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  const { runs } = useProvisioningFeed();
  const running = runs.filter((run) => run.status === 'RUNNING').length;

  let page: (typeof PAGES)[number] | undefined;
  let params: Record<string, string> = {};
  for (const candidate of PAGES.filter((p) => !p.public)) {
    const match = matchPath(candidate.path, pathname);
    if (match) {
      page = candidate;
      params = match;
      break;
    }
  }

  useEffect(() => {
    if (pathname === '/') navigate(HOME, { replace: true });
  }, [pathname]);

  useEffect(() => {
    document.title = `${page?.title ?? 'Not found'} · Onramp console`;
    // After a navigation (not the first render), move focus to the new page's heading so that
    // keyboard and screen-reader users start there.
    if (first.current) {
      first.current = false;
      return;
    }
    const heading = main.current?.querySelector<HTMLElement>('h1');
    (heading ?? main.current)?.focus();
  }, [page]);

  const isCurrent = (path: string) => pathname === path || pathname.startsWith(`${path}/`);
  const navLinks = (group: 'main' | 'dev') =>
    PAGES.filter((p) => p.nav?.group === group).map((p) => (
      <li key={p.path}>
        <Link href={p.path} aria-current={isCurrent(p.path) ? 'page' : undefined}>
          {p.nav?.label}
          {p.path === '/live' && running > 0 && (
            <span className="nav-count" role="status" aria-label={`${running} running`}>
              {running}
            </span>
          )}
        </Link>
      </li>
    ));

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link href={HOME} className="brand">
          Onramp
        </Link>
        <nav aria-label="Main" className="nav">
          <ul>{navLinks('main')}</ul>
          <ul className="nav-dev" aria-label="Development tools">
            {navLinks('dev')}
          </ul>
        </nav>
        <div className="account">
          <span className="account-email" title={user.email ?? undefined}>
            {user.email ?? `${user.firstName} ${user.lastName}`}
          </span>
          <button type="button" className="button button-small" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <ConnectionBanner />
      <main id="main" ref={main} tabIndex={-1} className="content">
        {page ? (
          page.render(params)
        ) : pathname === '/' ? null : (
          <>
            <h1 tabIndex={-1}>Page not found</h1>
            <p>
              Nothing lives at <code>{pathname}</code>. <Link href={HOME}>Go to clinics</Link>.
            </p>
          </>
        )}
      </main>
    </div>
  );
}

/** Says what is unreachable, since when, and that the console keeps trying. */
function ConnectionBanner() {
  const state = useConnection();
  const outage = describeOutage(state);
  if (!outage) return null;
  return (
    <div className="outage" role="alert" data-testid="outage-banner">
      <strong>{outage}</strong>{' '}
      {state.troubleSince !== null && <>Since {formatTime(new Date(state.troubleSince).toISOString())}. </>}
      The pages show the last data they had, greyed, and refresh by themselves once it is back.
    </div>
  );
}
