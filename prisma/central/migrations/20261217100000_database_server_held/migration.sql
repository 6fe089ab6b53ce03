-- A cluster first seen at the address of a recorded server that still has live clinics, while
-- that server is not identified anywhere, is recorded held (docs/decisions/090): why, in words.
-- No clinic, spare or template is placed on a held server, by any instance, until the recorded
-- server is found elsewhere or an operator accepts it (`pnpm clinics:servers accept`).
ALTER TABLE database_servers ADD COLUMN held_reason text;
