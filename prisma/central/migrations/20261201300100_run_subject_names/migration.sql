-- The name of what a provisioning run works on (the clinic, or the onboarding's organisation),
-- kept on the run: a failed registration rolls its clinic row back, and the console still has to
-- say which registration failed.

ALTER TABLE "provisioning_runs" ADD COLUMN "subject_name" TEXT;

UPDATE "provisioning_runs" AS r SET "subject_name" = c."name" FROM "clinics" AS c WHERE c."id" = r."clinic_id";
