-- Recorded consents (docs/decisions/053-recorded-consents.md): one row per acceptance of a
-- document version, written in the transaction that creates the account or signs it in. A
-- withdrawal closes the row; nothing is deleted. deleteMyAccount keeps the rows without identity
-- (user and address cleared), as it does the audit log. No clinic_id: a consent is the user's,
-- and only platform code (by the viewer's own id) reads or writes it.
CREATE TABLE consents (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
  document     text NOT NULL CHECK (document IN ('TERMS', 'PRIVACY')),
  version      text NOT NULL CHECK (length(version) BETWEEN 1 AND 32),
  accepted_at  timestamptz(3) NOT NULL DEFAULT now(),
  withdrawn_at timestamptz(3),
  ip           text
);
CREATE INDEX consents_user_id_idx ON consents (user_id, document);
