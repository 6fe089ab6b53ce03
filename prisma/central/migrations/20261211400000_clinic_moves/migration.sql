-- Moves of a clinic database to another server (moveClinic, docs/decisions/049): a MOVE run, and
-- what the move itself records — where from, where to, the clinic's write downtime, the rows
-- verified per table.
ALTER TYPE "ProvisioningRunKind" ADD VALUE 'MOVE';

CREATE TYPE "ClinicMoveStatus" AS ENUM ('RUNNING', 'SUCCEEDED', 'ROLLED_BACK', 'FAILED');

CREATE TABLE "clinic_moves" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "clinic_id" UUID NOT NULL,
    "run_id" UUID,
    "from_server_id" UUID NOT NULL,
    "to_server_id" UUID NOT NULL,
    "status" "ClinicMoveStatus" NOT NULL DEFAULT 'RUNNING',
    "downtime_ms" INTEGER,
    "rows_verified" JSONB,
    "error" TEXT,
    "actor_id" UUID,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    CONSTRAINT "clinic_moves_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "clinic_moves_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "provisioning_runs"("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "clinic_moves_from_server_id_fkey" FOREIGN KEY ("from_server_id") REFERENCES "database_servers"("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "clinic_moves_to_server_id_fkey" FOREIGN KEY ("to_server_id") REFERENCES "database_servers"("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

CREATE INDEX "clinic_moves_clinic_id_started_at_idx" ON "clinic_moves"("clinic_id", "started_at");

-- One move of a clinic at a time: the claim is this insert.
CREATE UNIQUE INDEX "clinic_moves_one_running" ON "clinic_moves"("clinic_id") WHERE "status" = 'RUNNING';

-- Forced row-level security, like every central table with a clinic_id (decision 011). Only the
-- platform's connection (the move service) reads or writes it: the platform policy alone, and no
-- privilege for the request role, as on clinic_objects.
ALTER TABLE clinic_moves ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic_moves FORCE ROW LEVEL SECURITY;

CREATE POLICY platform ON clinic_moves USING (onramp_is_platform());
