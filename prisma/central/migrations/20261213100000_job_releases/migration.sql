-- How many times each job's worker died while it ran it (docs/decisions/084): a job released
-- that often is kept, permanently failed, instead of being handed to the next instance, so that
-- one job that kills its process cannot take the instances down one after another.
CREATE TABLE "job_releases" (
    "job_id" BIGINT NOT NULL,
    "task" TEXT NOT NULL,
    "releases" INTEGER NOT NULL,
    "last_released_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "job_releases_pkey" PRIMARY KEY ("job_id")
);
