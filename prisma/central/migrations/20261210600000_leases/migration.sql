-- Cluster-wide leases (docs/decisions/050): work one instance of the cluster does per period,
-- such as the background health sweep, belongs to the holder of its lease until it lapses.

CREATE TABLE "leases" (
    "name" TEXT NOT NULL,
    "holder" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "leases_pkey" PRIMARY KEY ("name")
);
