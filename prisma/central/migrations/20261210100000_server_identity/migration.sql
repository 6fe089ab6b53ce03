-- Clinic database servers get a stable identity (issue 11): PostgreSQL's own system identifier,
-- which survives a change of address. Clinics reference the server row, not a `host:port` string.
-- Existing servers become rows named after their address, with no identifier yet: the first start
-- after this migration fills it in when a configured URL reaches them (server/src/db/servers.ts).

CREATE TABLE "database_servers" (
  "id" UUID NOT NULL DEFAULT gen_random_uuid(),
  "name" TEXT NOT NULL,
  "system_identifier" TEXT,
  -- The address it was last reached at (`host:port`) and that URL without its password.
  "address" TEXT NOT NULL,
  "url" TEXT NOT NULL,
  "reachable" BOOLEAN NOT NULL DEFAULT false,
  "last_error" TEXT,
  "last_seen_at" TIMESTAMPTZ(3),
  "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
  "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
  CONSTRAINT "database_servers_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "database_servers_name_key" ON "database_servers" ("name");
CREATE UNIQUE INDEX "database_servers_system_identifier_key" ON "database_servers" ("system_identifier");

INSERT INTO "database_servers" ("name", "address", "url")
  SELECT DISTINCT "database_server", "database_server", 'postgres://' || "database_server" FROM "clinics";

ALTER TABLE "clinics" ADD COLUMN "database_server_id" UUID;
UPDATE "clinics" AS c SET "database_server_id" = s."id"
  FROM "database_servers" AS s WHERE s."name" = c."database_server";
ALTER TABLE "clinics" ALTER COLUMN "database_server_id" SET NOT NULL;
ALTER TABLE "clinics" ADD CONSTRAINT "clinics_database_server_id_fkey"
  FOREIGN KEY ("database_server_id") REFERENCES "database_servers" ("id") ON DELETE RESTRICT ON UPDATE CASCADE;
DROP INDEX "clinics_database_server_idx";
ALTER TABLE "clinics" DROP COLUMN "database_server";
CREATE INDEX "clinics_database_server_id_idx" ON "clinics" ("database_server_id");
