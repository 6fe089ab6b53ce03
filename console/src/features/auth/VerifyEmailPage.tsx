/**
 * The page of the verification e-mail's link (`/verify-email?token=…`). It verifies only when
 * the person presses the button: mail scanners fetch links (and some run their scripts) to
 * inspect them, and must not spend the token. It says why a link does not work, offers a new
 * one, and leads to sign-in.
 */
import { type FormEvent, useId, useRef, useState } from 'react';
import { useMutation } from 'urql';
import { Link } from '../../app/router';
import { SIGN_IN_PATH } from '../../app/routes';
import { graphql } from '../../gql';
import type { InvalidCodeReason } from '../../gql/graphql';
import { describeError } from '../../ui/states';

const VerifyEmailMutation = graphql(`
  mutation VerifyEmailPage_VerifyEmailMutation($token: String!) {
    verifyEmail(token: $token) {
      __typename
      ... on VerifyEmailSuccess {
        user {
          email
          firstName
        }
      }
      ... on InvalidCodeError {
        reason
        message
      }
      ... on Error {
        message
      }
    }
  }
`);

const ResendMutation = graphql(`
  mutation VerifyEmailPage_ResendMutation($email: String!) {
    resendVerificationEmail(email: $email) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

type Outcome =
  | { kind: 'ready' }
  | { kind: 'verified'; email: string | null; firstName: string }
  | { kind: 'refused'; reason: InvalidCodeReason | 'INVALID'; message: string }
  | { kind: 'failed'; message: string };

const TITLES: Record<InvalidCodeReason | 'INVALID', string> = {
  EXPIRED: 'This link has expired',
  USED: 'This link was already used',
  UNKNOWN: 'This link is not valid',
  INVALID: 'This link is not valid',
};

export function VerifyEmailPage() {
  // Read once: the token leaves the address bar after the press (below).
  const [token] = useState(() => new URLSearchParams(window.location.search).get('token') ?? '');
  const [outcome, setOutcome] = useState<Outcome>(
    token ? { kind: 'ready' } : { kind: 'refused', reason: 'INVALID', message: 'The link has no token.' },
  );
  const [verifyState, verify] = useMutation(VerifyEmailMutation);
  const heading = useRef<HTMLHeadingElement>(null);

  async function confirm() {
    const result = await verify({ token });
    // Spent or not, the token has no business in the history any more.
    window.history.replaceState(null, '', '/verify-email');
    const answer = result.data?.verifyEmail;
    if (answer?.__typename === 'VerifyEmailSuccess') {
      setOutcome({ kind: 'verified', email: answer.user.email ?? null, firstName: answer.user.firstName });
    } else if (answer?.__typename === 'InvalidCodeError') {
      setOutcome({ kind: 'refused', reason: answer.reason ?? 'UNKNOWN', message: answer.message });
    } else if (answer && 'message' in answer) {
      setOutcome({ kind: 'refused', reason: 'INVALID', message: answer.message });
    } else {
      setOutcome({
        kind: 'failed',
        message: result.error ? describeError(result.error) : 'The server gave no answer.',
      });
    }
    heading.current?.focus();
  }

  let body: React.ReactNode;
  let title: string;
  if (outcome.kind === 'ready') {
    title = 'Confirm your e-mail address';
    body = (
      <>
        <p>Press the button to confirm the e-mail address this link was sent to.</p>
        <button
          type="button"
          className="button button-primary"
          onClick={() => void confirm()}
          disabled={verifyState.fetching}
        >
          {verifyState.fetching ? 'Confirming…' : 'Confirm my e-mail address'}
        </button>
      </>
    );
  } else if (outcome.kind === 'verified') {
    title = 'Your e-mail address is confirmed';
    const next = outcome.email ? `${SIGN_IN_PATH}?email=${encodeURIComponent(outcome.email)}` : SIGN_IN_PATH;
    body = (
      <>
        <p className="notice notice-success" role="status">
          Thank you, {outcome.firstName}. {outcome.email ?? 'Your address'} is confirmed; you can sign in now.
        </p>
        <Link href={next} className="button button-primary">
          Continue to sign-in
        </Link>
      </>
    );
  } else if (outcome.kind === 'refused') {
    title = TITLES[outcome.reason];
    body = (
      <>
        <p className="notice notice-error" role="alert" data-reason={outcome.reason}>
          {outcome.message}
        </p>
        {outcome.reason === 'USED' && (
          <p>
            If you already confirmed your address, <Link href={SIGN_IN_PATH}>sign in</Link>.
          </p>
        )}
        <ResendForm />
      </>
    );
  } else {
    title = 'Your e-mail could not be confirmed';
    body = (
      <>
        <p className="notice notice-error" role="alert">
          {outcome.message}
        </p>
        <button type="button" className="button" onClick={() => setOutcome({ kind: 'ready' })}>
          Try again
        </button>
      </>
    );
  }

  return (
    <main className="sign-in">
      <div className="card sign-in-card">
        <p className="brand">Onramp</p>
        <h1 ref={heading} tabIndex={-1}>
          {title}
        </h1>
        {body}
      </div>
    </main>
  );
}

/** resendVerificationEmail answers the same for any address (no account enumeration). */
function ResendForm() {
  const [email, setEmail] = useState('');
  const [sentTo, setSentTo] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [state, resend] = useMutation(ResendMutation);
  const id = useId();

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const result = await resend({ email: email.trim() });
    const answer = result.data?.resendVerificationEmail;
    if (answer?.__typename === 'ResendVerificationEmailSuccess') return setSentTo(email.trim());
    setError(
      answer && 'message' in answer
        ? answer.message
        : result.error
          ? describeError(result.error)
          : 'No answer.',
    );
  }

  if (sentTo)
    return (
      <p className="notice" role="status">
        If {sentTo} has an account waiting for confirmation, a new link is on its way. It works once, for 24
        hours.
      </p>
    );
  return (
    <form className="resend" onSubmit={submit}>
      <h2>Get a new link</h2>
      <div className="field">
        <label htmlFor={id}>Your e-mail address</label>
        <input
          id={id}
          type="email"
          autoComplete="email"
          required
          maxLength={254}
          value={email}
          onChange={(event) => setEmail(event.target.value)}
        />
      </div>
      {error && (
        <p className="notice notice-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" className="button" disabled={state.fetching}>
        {state.fetching ? 'Sending…' : 'Send me a new link'}
      </button>
    </form>
  );
}
