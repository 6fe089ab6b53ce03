-- Central schema, first version.

CREATE TYPE "ClinicStatus" AS ENUM ('PROVISIONING', 'PENDING', 'READY', 'FAILED', 'DELETING');
CREATE TYPE "UserRole" AS ENUM ('SUPER_ADMIN', 'CLINIC_ADMIN', 'PRACTITIONER', 'STAFF', 'CLIENT');
CREATE TYPE "ProvisioningRunKind" AS ENUM ('REGISTER', 'REPAIR', 'UPGRADE', 'DELETE');
CREATE TYPE "ProvisioningRunStatus" AS ENUM ('RUNNING', 'SUCCEEDED', 'FAILED', 'ROLLED_BACK');
CREATE TYPE "ProvisioningStepStatus" AS ENUM ('STARTED', 'SUCCEEDED', 'FAILED', 'ROLLED_BACK', 'SKIPPED');

CREATE TABLE "companies" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "companies_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "clinics" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "company_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "country" CHAR(2) NOT NULL,
    "subdomain" TEXT NOT NULL,
    "status" "ClinicStatus" NOT NULL DEFAULT 'PROVISIONING',
    "database_name" TEXT NOT NULL,
    "database_server" TEXT NOT NULL,
    "database_role" TEXT NOT NULL,
    "database_password_enc" TEXT,
    "schema_version" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "clinics_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "clinics_company_id_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    -- PostgreSQL truncates identifiers at 63 bytes; a longer name would silently alias another.
    CONSTRAINT "clinics_database_name_check" CHECK (octet_length("database_name") BETWEEN 1 AND 63),
    CONSTRAINT "clinics_database_role_check" CHECK (octet_length("database_role") BETWEEN 1 AND 63),
    CONSTRAINT "clinics_subdomain_check" CHECK ("subdomain" ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
);
CREATE UNIQUE INDEX "clinics_subdomain_key" ON "clinics"("subdomain");
CREATE UNIQUE INDEX "clinics_database_name_key" ON "clinics"("database_name");
CREATE UNIQUE INDEX "clinics_database_role_key" ON "clinics"("database_role");
CREATE INDEX "clinics_status_idx" ON "clinics"("status");
CREATE INDEX "clinics_database_server_idx" ON "clinics"("database_server");

CREATE TABLE "users" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "email" TEXT NOT NULL,
    "password_hash" TEXT,
    "first_name" TEXT NOT NULL,
    "last_name" TEXT NOT NULL,
    "phone" TEXT,
    "role" "UserRole" NOT NULL,
    "clinic_id" UUID,
    "email_verified_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "users_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "users_clinic_id_fkey" FOREIGN KEY ("clinic_id") REFERENCES "clinics"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    -- The unique index below is only meaningful if every writer normalises the same way.
    CONSTRAINT "users_email_normalised_check" CHECK ("email" = lower(btrim("email")) AND "email" <> '')
);
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");
CREATE INDEX "users_clinic_id_idx" ON "users"("clinic_id");

CREATE TABLE "provisioning_runs" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "clinic_id" UUID NOT NULL,
    "kind" "ProvisioningRunKind" NOT NULL,
    "status" "ProvisioningRunStatus" NOT NULL DEFAULT 'RUNNING',
    "attempt" INTEGER NOT NULL DEFAULT 1,
    "lease_until" TIMESTAMPTZ(3),
    "error" TEXT,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    CONSTRAINT "provisioning_runs_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "provisioning_runs_clinic_id_started_at_idx" ON "provisioning_runs"("clinic_id", "started_at");
CREATE INDEX "provisioning_runs_status_lease_until_idx" ON "provisioning_runs"("status", "lease_until");

CREATE TABLE "provisioning_steps" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "run_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "status" "ProvisioningStepStatus" NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 1,
    "error" TEXT,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "duration_ms" INTEGER,
    CONSTRAINT "provisioning_steps_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "provisioning_steps_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "provisioning_runs"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "provisioning_steps_run_id_name_attempt_key" ON "provisioning_steps"("run_id", "name", "attempt");

CREATE TABLE "audit_log" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor_id" UUID,
    "clinic_id" UUID,
    "action" TEXT NOT NULL,
    "target_type" TEXT,
    "target_id" TEXT,
    "data" JSONB NOT NULL DEFAULT '{}',
    "ip" TEXT,
    CONSTRAINT "audit_log_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "audit_log_action_at_idx" ON "audit_log"("action", "at");
CREATE INDEX "audit_log_clinic_id_at_idx" ON "audit_log"("clinic_id", "at");
