-- The ledger of clinic databases and roles (issue 11, docs/decisions/040): every one Onramp creates
-- is written here before it is created, and settled when its run commits or rolls back. The orphan
-- sweep acts only on entries of finished runs that did not commit, and then only quarantines.
-- A deleted clinic is kept the same way, restorable, until its retention ends.

ALTER TYPE "ClinicStatus" ADD VALUE 'DELETED';
ALTER TYPE "ProvisioningRunKind" ADD VALUE 'RESTORE';

CREATE TYPE "ClinicObjectKind" AS ENUM ('DATABASE', 'ROLE');
CREATE TYPE "ClinicObjectState" AS ENUM ('PENDING', 'COMMITTED', 'QUARANTINED', 'DROPPED');

CREATE TABLE "clinic_objects" (
  "id" UUID NOT NULL DEFAULT gen_random_uuid(),
  "kind" "ClinicObjectKind" NOT NULL,
  "name" TEXT NOT NULL,
  "server_id" UUID NOT NULL,
  -- The run that created it; the clinic it was made for (its row may be gone after a rollback).
  "run_id" UUID,
  "clinic_id" UUID NOT NULL,
  "state" "ClinicObjectState" NOT NULL DEFAULT 'PENDING',
  -- While QUARANTINED: why, the database's name in the trash, and when the purge may drop it.
  "reason" TEXT,
  "trash_name" TEXT,
  "quarantined_at" TIMESTAMPTZ(3),
  "purge_after" TIMESTAMPTZ(3),
  "settled_at" TIMESTAMPTZ(3),
  "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
  "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
  CONSTRAINT "clinic_objects_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "clinic_objects_server_id_fkey" FOREIGN KEY ("server_id") REFERENCES "database_servers" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
  CONSTRAINT "clinic_objects_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "provisioning_runs" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "clinic_objects_server_id_kind_name_key" ON "clinic_objects" ("server_id", "kind", "name");
CREATE INDEX "clinic_objects_state_idx" ON "clinic_objects" ("state");
CREATE INDEX "clinic_objects_clinic_id_idx" ON "clinic_objects" ("clinic_id");

-- What exists today belongs to its clinic: committed entries, so nothing existing is ever swept.
INSERT INTO "clinic_objects" ("kind", "name", "server_id", "clinic_id", "state", "settled_at")
  SELECT 'DATABASE'::"ClinicObjectKind", "database_name", "database_server_id", "id", 'COMMITTED'::"ClinicObjectState", now() FROM "clinics"
  UNION ALL
  SELECT 'ROLE'::"ClinicObjectKind", "database_role", "database_server_id", "id", 'COMMITTED'::"ClinicObjectState", now() FROM "clinics";
