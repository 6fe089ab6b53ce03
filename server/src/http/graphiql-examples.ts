/**
 * The tabs GraphiQL opens with (until the browser has tabs of its own stored): one per main flow
 * of the README's "first ten minutes". Values are written inline, not as variables: GraphiQL
 * leaves the variables editor of the first tab empty. graphiql.test.ts validates each one.
 */
import type { GraphiQLOptions } from 'graphql-yoga';

type Tab = NonNullable<GraphiQLOptions['defaultTabs']>[number];

/** The header the signed-in tabs carry; paste `accessToken` from a sign-in tab over the placeholder. */
export const AUTHORIZATION_PLACEHOLDER = 'Bearer <accessToken from signInWithCode or signInWithPassword>';

const signedIn = JSON.stringify({ Authorization: AUTHORIZATION_PLACEHOLDER }, null, 2);

export const GRAPHIQL_EXAMPLE_TABS: Tab[] = [
  {
    query: `# Register a clinic: its own database, subdomain, DNS record, certificate and the
# verification e-mail, all or nothing. Watch it in the console's Live feed (or the
# "Live provisioning" tab). Expected failures are data: ask for them with "... on Error".
mutation RegisterClinic {
  registerClinic(
    input: {
      clinicName: "Clinique du Lac"
      country: "FR"
      adminEmail: "marie@example.com"
      adminPassword: "a sturdy passphrase 42"
      adminFirstName: "Marie"
      adminLastName: "Curie"
      acceptedDocuments: [{ document: TERMS, version: "2026-01" }, { document: PRIVACY, version: "2026-01" }]
    }
  ) {
    __typename
    ... on RegisterClinicSuccess { status clinic { id name subdomain fqdn } user { id email } }
    ... on ValidationError { message fields { path message } }
    ... on Error { code message }
  }
}`,
  },
  {
    query: `# Verify the admin's e-mail. The token is the one in the link of the verification
# e-mail (the console's Mailbox shows it in development: /verify-email?token=…).
mutation VerifyEmail {
  verifyEmail(token: "<token from the e-mail link>") {
    __typename
    ... on VerifyEmailSuccess { user { email emailVerified } }
    ... on InvalidCodeError { message reason }
    ... on Error { code message }
  }
}

# A new link; the same answer for any e-mail.
mutation ResendVerificationEmail {
  resendVerificationEmail(email: "marie@example.com") {
    __typename
    ... on Error { code message }
  }
}`,
  },
  {
    query: `# Sign in by e-mail code: ask for a code (the same answer whether or not the address
# has an account), read it in the mail (the console's Mailbox in development), then trade it
# for a session. Paste accessToken into the Authorization header of the signed-in tabs.
mutation RequestLoginCode {
  requestLoginCode(email: "admin@onramp.localhost") {
    __typename
    ... on LoginCodeRequested { expiresInSeconds }
    ... on Error { code message }
  }
}

mutation SignInWithCode {
  signInWithCode(email: "admin@onramp.localhost", code: "<6 digits from the e-mail>") {
    __typename
    ... on AuthSession { accessToken refreshToken expiresAt user { email role } }
    ... on Error { code message }
  }
}`,
  },
  {
    query: `# Sign in with a password (an e-mail, or the phone of a member invited by SMS). With
# two-factor authentication on, finish with verifyTwoFactor and the challenge token.
mutation SignInWithPassword {
  signInWithPassword(email: "marie@example.com", password: "a sturdy passphrase 42") {
    __typename
    ... on AuthSession { accessToken refreshToken expiresAt user { email role } }
    ... on TwoFactorChallenge { challengeToken }
    ... on Error { code message }
  }
}

mutation VerifyTwoFactor {
  verifyTwoFactor(challengeToken: "<challengeToken>", code: "<TOTP code>") {
    __typename
    ... on AuthSession { accessToken refreshToken expiresAt }
    ... on Error { code message }
  }
}`,
  },
  {
    query: `# Who am I? null without a (valid) token in the Authorization header below.
query Me {
  me { id email firstName lastName role emailVerified clinic { name subdomain status } }
}`,
    headers: signedIn,
  },
  {
    query: `# Every clinic database's health (super-admins: ONRAMP_ADMIN_EMAIL signs in by code).
query ClinicsHealth {
  clinicsHealth {
    checkedAt total healthy unhealthy
    clinics { clinicId name dbStatus tablesCount expectedTables missingTables errors lastCheck }
  }
}`,
    headers: signedIn,
  },
  {
    query: `# Provisioning as it happens, for every clinic (super-admins), over WebSocket.
# Subscriptions authenticate with connectionParams.authorization, which GraphiQL does not
# send: run this with a graphql-ws client (README, "GraphQL"), or watch the console's
# Live feed, which shows the same events.
subscription LiveProvisioning {
  provisioningProgress {
    runId clinicId clinicName kind step status attempt message durationMs at
  }
}`,
    headers: signedIn,
  },
];
