import { type FormEvent, useEffect, useId, useRef, useState } from 'react';
import { useClient, useMutation, useQuery } from 'urql';
import type { AuthSessionFields } from '../../auth/session';
import { graphql } from '../../gql';
import { describeError } from '../../ui/states';

const SignInWithLinkMutation = graphql(`
  mutation SignInPage_SignInWithLinkMutation($token: String!) {
    signInWithLink(token: $token) {
      __typename
      ...ConsoleClient_SessionFields
      ... on Error {
        message
      }
    }
  }
`);

const SignInHintsQuery = graphql(`
  query SignInPage_HintsQuery {
    signInLinkInTerminal
  }
`);

/**
 * The token of a development sign-in link (`/sign-in#link=…`, from the start banner), taken out
 * of the address bar at once so that it stays in no history entry. The fragment never reaches
 * the server or a Referer header.
 */
function takeLinkToken(): string | null {
  const match = /(?:^#|&)link=([A-Za-z0-9_-]+)/.exec(window.location.hash);
  if (!match) return null;
  window.history.replaceState(null, '', window.location.pathname + window.location.search);
  return match[1] ?? null;
}

/** Links already being spent: StrictMode mounts twice, and a link works once. */
const spending = new Map<string, Promise<unknown>>();

const RequestLoginCodeMutation = graphql(`
  mutation SignInPage_RequestLoginCodeMutation($email: String!) {
    requestLoginCode(email: $email) {
      __typename
      ... on LoginCodeRequested {
        expiresInSeconds
      }
      ... on Error {
        message
      }
    }
  }
`);

graphql(`
  fragment SignInPage_ConsentRequiredFields on ConsentRequired {
    documents {
      document
      version
    }
    current {
      document
      version
    }
  }
`);

graphql(`
  fragment SignInPage_ConsentWithdrawnFields on ConsentWithdrawnError {
    current {
      document
      version
    }
  }
`);

const SignInWithCodeMutation = graphql(`
  mutation SignInPage_SignInWithCodeMutation(
    $email: String!
    $code: String!
    $acceptedDocuments: [AcceptedDocumentInput!]
  ) {
    signInWithCode(email: $email, code: $code, acceptedDocuments: $acceptedDocuments) {
      __typename
      ...ConsoleClient_SessionFields
      ...SignInPage_ConsentRequiredFields
      ...SignInPage_ConsentWithdrawnFields
      ... on Error {
        message
      }
    }
  }
`);

const SignInWithPasswordMutation = graphql(`
  mutation SignInPage_SignInWithPasswordMutation(
    $email: String!
    $password: String!
    $acceptedDocuments: [AcceptedDocumentInput!]
  ) {
    signInWithPassword(email: $email, password: $password, acceptedDocuments: $acceptedDocuments) {
      __typename
      ...ConsoleClient_SessionFields
      ...SignInPage_ConsentRequiredFields
      ...SignInPage_ConsentWithdrawnFields
      ... on TwoFactorChallenge {
        challengeToken
      }
      ... on Error {
        message
      }
    }
  }
`);

const VerifyTwoFactorMutation = graphql(`
  mutation SignInPage_VerifyTwoFactorMutation($challengeToken: String!, $code: String!) {
    verifyTwoFactor(challengeToken: $challengeToken, code: $code) {
      __typename
      ...ConsoleClient_SessionFields
      ... on Error {
        message
      }
    }
  }
`);

type Step =
  | { kind: 'email' }
  | { kind: 'code'; email: string; expiresInSeconds: number }
  | { kind: 'password' }
  | { kind: 'totp'; challengeToken: string }
  /** The code or password was right; the documents must be accepted, then the same sign-in again. */
  | {
      kind: 'consent';
      via: 'code' | 'password';
      /** Why: documents changed (ConsentRequired), or the privacy notice was withdrawn. */
      reason: 'changed' | 'withdrawn';
      changed: Document[];
      current: Document[];
    };

type Document = { document: 'TERMS' | 'PRIVACY'; version: string };

const DOCUMENT_LABELS: Record<Document['document'], string> = {
  TERMS: 'Terms of use',
  PRIVACY: 'Privacy notice',
};

/**
 * Any sign-in answer: a session, a 2FA challenge, documents to accept first (ConsentRequired), or
 * an expected error (data, not exception).
 */
type Answer =
  | {
      __typename: string;
      message?: string;
      challengeToken?: string;
      documents?: Document[];
      current?: Document[];
    }
  | undefined;

export function SignInPage({
  onSignedIn,
  notice,
}: {
  onSignedIn: (session: AuthSessionFields) => void;
  notice?: string;
}) {
  const [step, setStep] = useState<Step>({ kind: 'email' });
  const [error, setError] = useState<string | null>(null);
  const [email, setEmail] = useState(
    () => new URLSearchParams(window.location.search).get('email')?.slice(0, 254) ?? '',
  );
  const [linkToken] = useState(takeLinkToken);
  const [linkBusy, setLinkBusy] = useState(linkToken !== null);
  const client = useClient();
  const [{ data: hints }] = useQuery({ query: SignInHintsQuery });
  const signedIn = useRef(onSignedIn);
  signedIn.current = onSignedIn;

  useEffect(() => {
    if (!linkToken) return;
    let pending = spending.get(linkToken);
    if (!pending) {
      pending = client.mutation(SignInWithLinkMutation, { token: linkToken }).toPromise();
      spending.set(linkToken, pending);
    }
    let active = true;
    void pending.then((value) => {
      if (!active) return;
      const result = value as Awaited<ReturnType<ReturnType<typeof client.mutation>['toPromise']>>;
      setLinkBusy(false);
      if (result.error) return setError(describeError(result.error));
      const answer = (result.data as { signInWithLink?: Answer } | undefined)?.signInWithLink;
      if (answer?.__typename === 'AuthSession')
        return signedIn.current(answer as unknown as AuthSessionFields);
      setError(answer?.message ?? 'This sign-in link did not work.');
    });
    return () => {
      active = false;
    };
  }, [linkToken, client]);
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  /** The e-mail the code was sent to, for the sign-in that follows a ConsentRequired answer. */
  const [codeEmail, setCodeEmail] = useState('');
  const [accepted, setAccepted] = useState<Partial<Record<Document['document'], boolean>>>({});
  const ids = { email: useId(), password: useId(), code: useId(), error: useId() };

  const [requestState, requestCode] = useMutation(RequestLoginCodeMutation);
  const [codeState, signInWithCode] = useMutation(SignInWithCodeMutation);
  const [passwordState, signInWithPassword] = useMutation(SignInWithPasswordMutation);
  const [totpState, verifyTwoFactor] = useMutation(VerifyTwoFactorMutation);
  const form = useRef<HTMLFormElement>(null);
  // Each step starts with its first field focused (the page has nothing else to do).
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs when the step changes.
  useEffect(() => {
    form.current?.querySelector('input')?.focus();
  }, [step.kind]);
  const busy =
    linkBusy || requestState.fetching || codeState.fetching || passwordState.fetching || totpState.fetching;

  /** Handles the union every sign-in mutation answers with. */
  const settle = (
    result: { data?: unknown; error?: Parameters<typeof describeError>[0] },
    answer: Answer,
    via?: 'code' | 'password',
  ) => {
    if (result.error) return setError(describeError(result.error));
    if (!answer) return setError('The server gave no answer.');
    if (answer.__typename === 'AuthSession') return onSignedIn(answer as unknown as AuthSessionFields);
    if (answer.__typename === 'TwoFactorChallenge' && answer.challengeToken) {
      setCode('');
      setError(null);
      return setStep({ kind: 'totp', challengeToken: answer.challengeToken });
    }
    if (answer.__typename === 'ConsentRequired' && via) {
      // The code is not spent by this answer: the same sign-in goes again with the acceptances.
      setAccepted({});
      return setStep({
        kind: 'consent',
        via,
        reason: 'changed',
        changed: answer.documents ?? [],
        current: answer.current ?? [],
      });
    }
    if (answer.__typename === 'ConsentWithdrawnError' && via && answer.current) {
      // Signing in again means accepting the privacy notice again: offered here, the code unspent.
      setAccepted({});
      return setStep({
        kind: 'consent',
        via,
        reason: 'withdrawn',
        changed: answer.current.filter(({ document }) => document === 'PRIVACY'),
        current: answer.current,
      });
    }
    setError(answer.message ?? 'Sign-in failed.');
  };

  const switchTo = (next: Step) => {
    setError(null);
    setCode('');
    setStep(next);
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    if (step.kind === 'email') {
      const result = await requestCode({ email });
      const answer = result.data?.requestLoginCode;
      if (result.error) return setError(describeError(result.error));
      if (answer?.__typename === 'LoginCodeRequested')
        return setStep({ kind: 'code', email, expiresInSeconds: answer.expiresInSeconds });
      return setError(answer && 'message' in answer ? answer.message : 'Could not send a code.');
    }
    if (step.kind === 'code') {
      setCodeEmail(step.email);
      const result = await signInWithCode({ email: step.email, code: code.trim() });
      return settle(result, result.data?.signInWithCode as Answer, 'code');
    }
    if (step.kind === 'password') {
      const result = await signInWithPassword({ email, password });
      return settle(result, result.data?.signInWithPassword as Answer, 'password');
    }
    if (step.kind === 'consent') {
      const acceptedDocuments = step.current.map(({ document, version }) => ({ document, version }));
      if (step.via === 'code') {
        const result = await signInWithCode({ email: codeEmail, code: code.trim(), acceptedDocuments });
        return settle(result, result.data?.signInWithCode as Answer, 'code');
      }
      const result = await signInWithPassword({ email, password, acceptedDocuments });
      return settle(result, result.data?.signInWithPassword as Answer, 'password');
    }
    const result = await verifyTwoFactor({ challengeToken: step.challengeToken, code: code.trim() });
    settle(result, result.data?.verifyTwoFactor as Answer);
  }

  const titles: Record<Step['kind'], string> = {
    email: 'Sign in with an e-mail code',
    code: 'Enter your code',
    password: 'Sign in with a password',
    totp: 'Two-factor authentication',
    consent: 'Accept the documents to continue',
  };
  const allAccepted = step.kind === 'consent' && step.current.every(({ document }) => accepted[document]);

  return (
    <main className="sign-in">
      <form
        ref={form}
        className="card sign-in-card"
        onSubmit={submit}
        aria-describedby={error ? ids.error : undefined}
      >
        <p className="brand">Onramp console</p>
        <h1>{titles[step.kind]}</h1>
        {notice && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        {linkBusy && (
          <p className="notice" role="status">
            Signing you in with the link from the terminal…
          </p>
        )}
        {hints?.signInLinkInTerminal && step.kind === 'email' && !linkBusy && (
          <p className="notice notice-dev" data-testid="terminal-link-hint">
            Development: the terminal running <code>pnpm start</code> shows a one-time sign-in link (the line
            “Sign in”) for the platform admin. It works once, for 15 minutes; restart the server for a new
            one.
          </p>
        )}

        {(step.kind === 'email' || step.kind === 'password') && (
          <div className="field">
            <label htmlFor={ids.email}>E-mail</label>
            <input
              id={ids.email}
              type="email"
              autoComplete="username"
              required
              value={email}
              onChange={(event) => setEmail(event.target.value)}
            />
          </div>
        )}
        {step.kind === 'password' && (
          <div className="field">
            <label htmlFor={ids.password}>Password</label>
            <input
              id={ids.password}
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(event) => setPassword(event.target.value)}
            />
          </div>
        )}
        {step.kind === 'code' && (
          <p className="hint">
            If <strong>{step.email}</strong> belongs to an account, a 6-digit code is on its way. It is valid
            for {Math.round(step.expiresInSeconds / 60)} minutes.
          </p>
        )}
        {step.kind === 'totp' && (
          <p className="hint">Enter the 6-digit code from your authenticator app, or a recovery code.</p>
        )}
        {step.kind === 'consent' && (
          <fieldset className="field" data-testid="consent-documents">
            <legend className="hint">
              {step.reason === 'withdrawn'
                ? 'You withdrew your consent to the privacy notice: accept it again to sign in.'
                : 'These documents changed since you accepted them, or you have not accepted them yet.'}
            </legend>
            {step.current.map(({ document, version }) => (
              <label key={document} className="checkbox">
                <input
                  type="checkbox"
                  name={document}
                  checked={accepted[document] ?? false}
                  onChange={(event) => setAccepted({ ...accepted, [document]: event.target.checked })}
                />{' '}
                I accept the {DOCUMENT_LABELS[document]} (version {version})
                {step.changed.some((changed) => changed.document === document) && (
                  <span className="muted">{step.reason === 'withdrawn' ? ' — withdrawn' : ' — new'}</span>
                )}
              </label>
            ))}
          </fieldset>
        )}
        {(step.kind === 'code' || step.kind === 'totp') && (
          <div className="field">
            <label htmlFor={ids.code}>
              {step.kind === 'code' ? 'Code from the e-mail' : 'Authenticator code'}
            </label>
            <input
              id={ids.code}
              name="code"
              inputMode={step.kind === 'code' ? 'numeric' : 'text'}
              autoComplete="one-time-code"
              required
              value={code}
              onChange={(event) => setCode(event.target.value)}
            />
          </div>
        )}

        {error && (
          <p id={ids.error} className="notice notice-error" role="alert">
            {error}
          </p>
        )}

        <button
          type="submit"
          className="button button-primary"
          disabled={busy || (step.kind === 'consent' && !allAccepted)}
        >
          {busy
            ? 'Please wait…'
            : step.kind === 'email'
              ? 'Send me a code'
              : step.kind === 'password'
                ? 'Sign in'
                : step.kind === 'consent'
                  ? 'Accept and sign in'
                  : 'Verify'}
        </button>

        <div className="sign-in-alternatives">
          {step.kind === 'code' && (
            <button type="button" className="link-button" onClick={() => switchTo({ kind: 'email' })}>
              Use another e-mail or send a new code
            </button>
          )}
          {step.kind === 'email' && (
            <button
              type="button"
              className="link-button"
              disabled={!email}
              onClick={() => switchTo({ kind: 'code', email: email.trim(), expiresInSeconds: 600 })}
            >
              I already have a code
            </button>
          )}
          {step.kind !== 'password' && step.kind !== 'consent' && (
            <button type="button" className="link-button" onClick={() => switchTo({ kind: 'password' })}>
              Sign in with a password instead
            </button>
          )}
          {step.kind === 'password' && (
            <button type="button" className="link-button" onClick={() => switchTo({ kind: 'email' })}>
              Sign in with an e-mail code instead
            </button>
          )}
        </div>
      </form>
    </main>
  );
}
