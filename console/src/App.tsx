import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import { Provider } from 'urql';
import { Layout } from './app/Layout';
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

  let body: React.ReactNode;
  if (state.status === 'restoring') {
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
