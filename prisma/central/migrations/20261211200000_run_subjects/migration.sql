-- A provisioning run works on a subject: a clinic, or an onboarding (docs/decisions/043).
-- Onboarding runs used to keep the onboarding's id in clinic_id; they now say what they are,
-- and clinic_id only ever holds a clinic's id (what row-level security filters on).

CREATE TYPE "ProvisioningSubjectKind" AS ENUM ('CLINIC', 'ONBOARDING');

ALTER TABLE "provisioning_runs"
  ADD COLUMN "subject_kind" "ProvisioningSubjectKind" NOT NULL DEFAULT 'CLINIC',
  ADD COLUMN "onboarding_id" UUID,
  ALTER COLUMN "clinic_id" DROP NOT NULL;

UPDATE "provisioning_runs"
   SET "subject_kind" = 'ONBOARDING', "onboarding_id" = "clinic_id", "clinic_id" = NULL
 WHERE "kind" = 'ONBOARDING';

-- Exactly one subject id, the one its kind names.
ALTER TABLE "provisioning_runs" ADD CONSTRAINT "provisioning_runs_subject_check" CHECK (
  ("subject_kind" = 'CLINIC' AND "clinic_id" IS NOT NULL AND "onboarding_id" IS NULL)
  OR ("subject_kind" = 'ONBOARDING' AND "onboarding_id" IS NOT NULL AND "clinic_id" IS NULL));

CREATE INDEX "provisioning_runs_onboarding_id_started_at_idx" ON "provisioning_runs"("onboarding_id", "started_at");
