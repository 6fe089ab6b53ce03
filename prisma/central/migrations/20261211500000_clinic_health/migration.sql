-- Recorded clinic health (docs/decisions/051): what the last shallow sweep and the last deep
-- check found for each clinic, so that clinicsHealth counts and pages from the central database
-- instead of connecting to every clinic database per request.
CREATE TABLE "clinic_health" (
    "clinic_id" UUID NOT NULL,
    "db_status" TEXT NOT NULL,
    -- What the shallow sweep last saw from the server's catalog (PRESENT, MISSING, NO_ROLE,
    -- NO_CONNECT, UNREACHABLE, PROVISIONING): a change of it calls for a deep check at once.
    "shallow" TEXT NOT NULL,
    "tables_count" INTEGER NOT NULL DEFAULT 0,
    "missing_tables" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    "schema_version" TEXT,
    "errors" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    "checked_at" TIMESTAMPTZ(3) NOT NULL,
    "deep_checked_at" TIMESTAMPTZ(3),
    CONSTRAINT "clinic_health_pkey" PRIMARY KEY ("clinic_id"),
    CONSTRAINT "clinic_health_db_status_check"
        CHECK ("db_status" IN ('HEALTHY', 'DEGRADED', 'UNHEALTHY', 'MISSING', 'PROVISIONING'))
);
CREATE INDEX "clinic_health_db_status_idx" ON "clinic_health"("db_status");
CREATE INDEX "clinic_health_deep_checked_at_idx" ON "clinic_health"("deep_checked_at" ASC NULLS FIRST);
ALTER TABLE "clinic_health" ADD CONSTRAINT "clinic_health_clinic_id_fkey"
    FOREIGN KEY ("clinic_id") REFERENCES "clinics"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Forced row-level security, like every central table with a clinic_id (decision 011): only the
-- platform's connection (the sweep, clinicsHealth through the health service) reads or writes it.
ALTER TABLE clinic_health ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic_health FORCE ROW LEVEL SECURITY;
CREATE POLICY platform ON clinic_health USING (onramp_is_platform());

-- When the shallow sweep last read each server's catalog (the report's checkedAt).
CREATE TABLE "health_sweeps" (
    "server_id" UUID NOT NULL,
    "swept_at" TIMESTAMPTZ(3) NOT NULL,
    "clinics" INTEGER NOT NULL,
    CONSTRAINT "health_sweeps_pkey" PRIMARY KEY ("server_id")
);
ALTER TABLE "health_sweeps" ADD CONSTRAINT "health_sweeps_server_id_fkey"
    FOREIGN KEY ("server_id") REFERENCES "database_servers"("id") ON DELETE CASCADE ON UPDATE CASCADE;
