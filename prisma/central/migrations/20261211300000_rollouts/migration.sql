-- Fleet rollouts of clinic schema changes (docs/decisions/047): a rollout upgrades every clinic
-- database to one clinic schema version, canaries first, each clinic as an UPGRADE run. Its state
-- lives here so that a rollout survives a restart and whichever instance holds its lease drives it.

CREATE TYPE "RolloutStatus" AS ENUM ('RUNNING', 'PAUSED', 'COMPLETED', 'ABORTED');
CREATE TYPE "RolloutClinicState" AS ENUM ('PENDING', 'RUNNING', 'UPGRADED', 'FAILED');

CREATE TABLE "rollouts" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "status" "RolloutStatus" NOT NULL DEFAULT 'RUNNING',
    "target_version" TEXT NOT NULL,
    "canary" INTEGER NOT NULL,
    "continue_when_healthy" BOOLEAN NOT NULL,
    "concurrency" INTEGER NOT NULL,
    "failure_threshold" INTEGER NOT NULL,
    "failure_baseline" INTEGER NOT NULL DEFAULT 0,
    "canary_passed" BOOLEAN NOT NULL DEFAULT false,
    "pause_reason" TEXT,
    "started_by" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    "finished_at" TIMESTAMPTZ(3),
    CONSTRAINT "rollouts_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "rollouts_started_by_fkey" FOREIGN KEY ("started_by") REFERENCES "users"("id") ON DELETE SET NULL
);

-- One rollout at a time: a second startRollout while one runs or is paused is a CONFLICT, decided
-- by this index rather than by a read that two instances could both pass.
CREATE UNIQUE INDEX "rollouts_one_active" ON "rollouts" ((true)) WHERE "status" IN ('RUNNING', 'PAUSED');
CREATE INDEX "rollouts_created_at_idx" ON "rollouts" ("created_at");

CREATE TABLE "rollout_clinics" (
    "rollout_id" UUID NOT NULL,
    "clinic_id" UUID NOT NULL,
    "position" INTEGER NOT NULL,
    "canary" BOOLEAN NOT NULL,
    "state" "RolloutClinicState" NOT NULL DEFAULT 'PENDING',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "from_version" TEXT,
    "error" TEXT,
    "db_status" TEXT,
    "run_id" UUID,
    "retry_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    CONSTRAINT "rollout_clinics_pkey" PRIMARY KEY ("rollout_id", "clinic_id"),
    CONSTRAINT "rollout_clinics_rollout_id_fkey" FOREIGN KEY ("rollout_id") REFERENCES "rollouts"("id") ON DELETE CASCADE,
    CONSTRAINT "rollout_clinics_clinic_id_fkey" FOREIGN KEY ("clinic_id") REFERENCES "clinics"("id") ON DELETE CASCADE
);
CREATE INDEX "rollout_clinics_rollout_id_state_position_idx" ON "rollout_clinics" ("rollout_id", "state", "position");
CREATE INDEX "rollout_clinics_clinic_id_idx" ON "rollout_clinics" ("clinic_id");

-- Forced row-level security, like every central table with a clinic_id column (decision 011):
-- only the platform's connection (the rollout driver, super-admin resolvers) reads or writes it.
ALTER TABLE "rollout_clinics" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "rollout_clinics" FORCE ROW LEVEL SECURITY;

CREATE POLICY platform ON "rollout_clinics" USING (onramp_is_platform());
