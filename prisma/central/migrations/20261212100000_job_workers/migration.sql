-- Which instance runs each graphile-worker worker (docs/decisions/082): a job locked by a worker
-- whose instance has no job-worker connection left (seen so on two passes) is unlocked, instead
-- of waiting 4 hours for graphile-worker's own reset.
CREATE TABLE "job_workers" (
    "worker_id" TEXT NOT NULL,
    "instance" TEXT NOT NULL,
    "gone_since" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "job_workers_pkey" PRIMARY KEY ("worker_id")
);
