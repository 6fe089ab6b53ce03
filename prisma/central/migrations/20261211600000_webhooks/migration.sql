-- Integrator webhooks (docs/decisions/052-webhooks-outbox-and-signatures.md): endpoints an
-- application registers, one delivery per event and endpoint (queued with a deliver_webhook job
-- in the transaction of the state change), and one row per attempt. No clinic_id: these belong
-- to applications, which only platform code (never a clinic-scoped request) reads.
CREATE TABLE webhook_endpoints (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  application_id           uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
  url                      text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
  events                   text[] NOT NULL CHECK (
    cardinality(events) > 0
    AND events <@ ARRAY['onboarding.provisioned', 'onboarding.completed', 'onboarding.failed']::text[]),
  -- AES-256-GCM (ENCRYPTION_KEY, the endpoint's id as associated data): deliveries are signed
  -- with it, so a digest would not do.
  secret_encrypted         text NOT NULL,
  -- The onboarding whose API credentials registered it (null when a super-admin did).
  created_by_onboarding_id uuid REFERENCES onboardings (id) ON DELETE SET NULL,
  created_at               timestamptz(3) NOT NULL DEFAULT now(),
  -- Deleted endpoints are kept for their deliveries' history; nothing is sent to them.
  deleted_at               timestamptz(3)
);
CREATE INDEX webhook_endpoints_application_id_idx ON webhook_endpoints (application_id);

CREATE TABLE webhook_deliveries (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  application_id  uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
  -- The event (evt_…): a replay is a new delivery of the same event.
  event_id        text NOT NULL,
  event           text NOT NULL CHECK (event IN ('onboarding.provisioned', 'onboarding.completed', 'onboarding.failed')),
  onboarding_id   uuid REFERENCES onboardings (id) ON DELETE SET NULL,
  -- The exact bytes sent and signed.
  body            text NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  replay_of       uuid REFERENCES webhook_deliveries (id) ON DELETE SET NULL,
  next_attempt_at timestamptz(3),
  delivered_at    timestamptz(3),
  created_at      timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_application_id_created_at_idx ON webhook_deliveries (application_id, created_at);
CREATE INDEX webhook_deliveries_endpoint_id_idx ON webhook_deliveries (endpoint_id);

CREATE TABLE webhook_attempts (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  delivery_id     uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt         integer NOT NULL,
  started_at      timestamptz(3) NOT NULL,
  duration_ms     integer NOT NULL,
  -- The receiver's HTTP status; null when no answer came (refused, timeout, blocked address).
  response_status integer,
  -- A short summary of what went wrong: never a header, a body or a secret.
  error           text CHECK (length(error) <= 300),
  UNIQUE (delivery_id, attempt)
);
