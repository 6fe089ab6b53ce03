-- Client records (people and companies a clinic serves) and e-mail sign-in codes.

CREATE TYPE "ClientKind" AS ENUM ('PERSON', 'COMPANY');

CREATE TABLE "client_records" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "clinic_id" UUID NOT NULL,
    "kind" "ClientKind" NOT NULL,
    "email" TEXT NOT NULL,
    "first_name" TEXT,
    "last_name" TEXT,
    "legal_name" TEXT,
    "user_id" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "client_records_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "client_records_clinic_id_fkey" FOREIGN KEY ("clinic_id") REFERENCES "clinics"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "client_records_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "client_records_email_normalised_check" CHECK ("email" = lower(btrim("email")) AND "email" <> ''),
    CONSTRAINT "client_records_names_check" CHECK (
        ("kind" = 'PERSON' AND "first_name" IS NOT NULL AND "last_name" IS NOT NULL)
        OR ("kind" = 'COMPANY' AND "legal_name" IS NOT NULL))
);
CREATE UNIQUE INDEX "client_records_clinic_id_email_key" ON "client_records"("clinic_id", "email");
CREATE INDEX "client_records_email_idx" ON "client_records"("email");

-- One live code per e-mail. failed_attempts survives a new code: asking again does not reset
-- the guessing budget until the window ends.
CREATE TABLE "login_codes" (
    "email" TEXT NOT NULL,
    -- HMAC-SHA256 of the code under a server secret; NULL once used or burned.
    "code_hmac" TEXT,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "failed_attempts" INTEGER NOT NULL DEFAULT 0,
    "window_started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sends" INTEGER NOT NULL DEFAULT 0,
    "last_sent_at" TIMESTAMPTZ(3),
    CONSTRAINT "login_codes_pkey" PRIMARY KEY ("email")
);
