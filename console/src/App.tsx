import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import { Provider } from 'urql';
import { Layout } from './app/Layout';
import { matchPath, navigate, useLocation } from './app/router';
import { HOME, PAGES, SIGN_IN_PATH } from './app/routes';
import { createConsoleClient } from './auth/client';
import { SessionStore } from './auth/session';
import { SignInPage } from './features/auth/SignInPage';
import { ProvisioningFeedProvider } from './features/live/ProvisioningFeed';
import { Loading } from './ui/states';

const session = new SessionStore(window.sessionStorage);

export function App() {
  const state = useSyncExternalStore(session.subscribe, session.getState);
  const userId = state.status === 'signed-in' ? state.session.user.id : null;
  // A fresh client (cache, socket) for each user: nothing of one session leaks into the next.
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new client exactly when the user changes.
  const api = useMemo(() => createConsoleClient(session), [userId]);
  const current = useRef(api);
  current.current = api;
  useEffect(
    () => () => {
      // StrictMode re-runs effects with the same client: dispose only one that was replaced.
      setTimeout(() => {
        if (current.current !== api) api.dispose();
      }, 0);
    },
    [api],
  );

  useEffect(() => {
    if (session.getState().status === 'restoring') void session.refresh();
  }, []);

  const { pathname } = useLocation();
  // Pages such as the e-mail verification link work with or without a session.
  const publicPage = PAGES.find((page) => page.public && matchPath(page.path, pathname));
  useEffect(() => {
    if (publicPage) document.title = `${publicPage.title} · Onramp`;
    else if (state.status === 'signed-out') document.title = 'Sign in · Onramp console';
  }, [publicPage, state.status]);
  useEffect(() => {
    if (state.status === 'signed-in' && pathname === SIGN_IN_PATH) navigate(HOME, { replace: true });
  }, [state.status, pathname]);

  let body: React.ReactNode;
  if (publicPage) {
    body = publicPage.render(matchPath(publicPage.path, pathname) ?? {});
  } else if (state.status === 'restoring') {
    body = (
      <main className="sign-in">
        <Loading label="Restoring your session…" />
      </main>
    );
  } else if (state.status === 'signed-out') {
    body = <SignInPage notice={state.reason} onSignedIn={(auth) => session.signIn(auth)} />;
  } else if (state.session.user.role !== 'SUPER_ADMIN') {
    body = (
      <main className="sign-in">
        <div className="card sign-in-card">
          <h1>Platform operators only</h1>
          <p>
            You are signed in as {state.session.user.email}, which is not a platform super-admin. This console
            manages every clinic; use an operator account.
          </p>
          <button type="button" className="button button-primary" onClick={() => void api.signOut()}>
            Sign out
          </button>
        </div>
      </main>
    );
  } else {
    body = (
      <ProvisioningFeedProvider>
        <Layout user={state.session.user} onSignOut={() => void api.signOut()} />
      </ProvisioningFeedProvider>
    );
  }
  return <Provider value={api.client}>{body}</Provider>;
}
