-- Onboarding service (issue #6): applications and their master keys, onboardings, one
-- subdomain reservation table shared by clinics and onboardings, request counters for rate
-- limits, and stored responses of Idempotency-Key requests. Secrets are stored as sha256 only.

-- Onboarding provisioning runs go through the saga runner too (dns, ssl, commit).
ALTER TYPE "ProvisioningRunKind" ADD VALUE 'ONBOARDING';

CREATE TABLE "applications" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "created_by" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "applications_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "applications_name_check" CHECK (char_length("name") BETWEEN 1 AND 120)
);

-- One row per issued master key; rotation revokes the old row and adds a new one.
CREATE TABLE "application_keys" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "application_id" UUID NOT NULL,
    -- The public, non-secret part of `mk_<key_id>_<secret>`, used to find the row.
    "key_id" TEXT NOT NULL,
    "key_hash" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    CONSTRAINT "application_keys_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "application_keys_application_id_fkey" FOREIGN KEY ("application_id") REFERENCES "applications"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "application_keys_key_id_key" ON "application_keys"("key_id");
CREATE INDEX "application_keys_application_id_idx" ON "application_keys"("application_id");

CREATE TABLE "onboardings" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "application_id" UUID NOT NULL,
    "email" TEXT NOT NULL,
    "organization_name" TEXT,
    "subdomain" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "dns_configured" BOOLEAN NOT NULL DEFAULT false,
    "ssl_configured" BOOLEAN NOT NULL DEFAULT false,
    "infrastructure_status" TEXT NOT NULL DEFAULT 'pending',
    "provisioning_attempts" INTEGER NOT NULL DEFAULT 0,
    -- A provisioning in progress holds this lease; a crashed one lets it lapse.
    "provisioning_until" TIMESTAMPTZ(3),
    "last_error" TEXT,
    "api_key_id" TEXT,
    "api_key_hash" TEXT,
    "api_secret_hash" TEXT,
    "tenant_id" TEXT,
    "completion_metadata" JSONB,
    "activated_at" TIMESTAMPTZ(3),
    "completed_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "onboardings_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "onboardings_application_id_fkey" FOREIGN KEY ("application_id") REFERENCES "applications"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "onboardings_status_check" CHECK ("status" IN ('pending', 'activated', 'completed')),
    CONSTRAINT "onboardings_infrastructure_status_check" CHECK ("infrastructure_status" IN ('pending', 'partial', 'ready', 'failed')),
    CONSTRAINT "onboardings_email_normalised_check" CHECK ("email" = lower(btrim("email")) AND "email" <> '')
);
CREATE UNIQUE INDEX "onboardings_subdomain_key" ON "onboardings"("subdomain");
CREATE UNIQUE INDEX "onboardings_api_key_id_key" ON "onboardings"("api_key_id");
CREATE INDEX "onboardings_application_id_created_at_idx" ON "onboardings"("application_id", "created_at");

-- Every subdomain in use, by a clinic or an onboarding: the primary key is what makes
-- allocation unique under concurrency across both. Rows go with their owner (cascade).
-- The onboarding foreign key is deferred: the reservation is taken before its onboarding row.
CREATE TABLE "subdomain_reservations" (
    "subdomain" TEXT NOT NULL,
    "clinic_id" UUID,
    "onboarding_id" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "subdomain_reservations_pkey" PRIMARY KEY ("subdomain"),
    CONSTRAINT "subdomain_reservations_clinic_id_fkey" FOREIGN KEY ("clinic_id") REFERENCES "clinics"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "subdomain_reservations_onboarding_id_fkey" FOREIGN KEY ("onboarding_id") REFERENCES "onboardings"("id") ON DELETE CASCADE ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT "subdomain_reservations_owner_check" CHECK (num_nonnulls("clinic_id", "onboarding_id") = 1),
    CONSTRAINT "subdomain_reservations_label_check" CHECK ("subdomain" ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
);
CREATE UNIQUE INDEX "subdomain_reservations_clinic_id_key" ON "subdomain_reservations"("clinic_id");
CREATE UNIQUE INDEX "subdomain_reservations_onboarding_id_key" ON "subdomain_reservations"("onboarding_id");

-- Clinics that exist already keep their names.
INSERT INTO "subdomain_reservations" ("subdomain", "clinic_id")
SELECT "subdomain", "id" FROM "clinics"
 WHERE "subdomain" ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
ON CONFLICT DO NOTHING;

-- Fixed-window request counters (rate limits), shared by every instance without REDIS_URL.
CREATE TABLE "request_counters" (
    "scope" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "count" INTEGER NOT NULL DEFAULT 0,
    "window_started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "request_counters_pkey" PRIMARY KEY ("scope", "key")
);
CREATE INDEX "request_counters_window_started_at_idx" ON "request_counters"("window_started_at");

-- Idempotency-Key (IETF draft): the first response to (application, key), replayed for 24 h.
-- `owner` scopes keys per caller: `application:<id>` (master key) or `user:<id>` (super-admin).
CREATE TABLE "idempotency_keys" (
    "owner" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'running',
    "locked_until" TIMESTAMPTZ(3),
    "response_status" INTEGER,
    "response_body" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "idempotency_keys_pkey" PRIMARY KEY ("owner", "key"),
    CONSTRAINT "idempotency_keys_status_check" CHECK ("status" IN ('running', 'done'))
);
CREATE INDEX "idempotency_keys_expires_at_idx" ON "idempotency_keys"("expires_at");
