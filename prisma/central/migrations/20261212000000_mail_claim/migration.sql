-- The claim of a message's send (docs/decisions/075): the attempt in flight holds the row until
-- claimed_until, so neither the job nor another process sends it meanwhile; a failure clears it,
-- and a crash leaves it to expire.
ALTER TABLE "mail_outbox" ADD COLUMN "claimed_until" TIMESTAMPTZ(3);
