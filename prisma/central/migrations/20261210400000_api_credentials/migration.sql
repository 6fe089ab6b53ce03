-- API credentials that authenticate requests (README, "Onboarding service"): the secret signs
-- each request with HMAC-SHA256, so the server must be able to compute the same HMAC; a sha256
-- of it cannot. It is kept encrypted with ENCRYPTION_KEY (AES-256-GCM, the onboarding's id as
-- associated data). Credentials issued before this migration had only the digest, which can
-- verify nothing: they are cleared and the application rotates them (rotateOnboardingApiKey).
ALTER TABLE onboardings ADD COLUMN api_secret_encrypted text;
UPDATE onboardings SET api_key_id = NULL, api_key_hash = NULL WHERE api_secret_hash IS NOT NULL;
ALTER TABLE onboardings DROP COLUMN api_secret_hash;
ALTER TABLE onboardings ADD COLUMN api_key_rotated_at timestamptz(3);

-- Signatures already accepted, kept for the 5-minute window in which their timestamp is valid:
-- a second request with the same signature is a replay and is refused.
CREATE TABLE api_request_signatures (
  signature  text PRIMARY KEY,
  expires_at timestamptz(3) NOT NULL
);
CREATE INDEX api_request_signatures_expires_at_idx ON api_request_signatures (expires_at);
