-- How many times every session of the user was ended (docs/decisions/089): a factor change, a
-- withdrawn privacy notice, an account deletion, a first proof of the mailbox. A sign-in reads it
-- with the credentials it checks, and its session is written only while it is unchanged, under a
-- share lock on the user's row: an end of every session committed meanwhile refuses the write,
-- one under way waits for it and then ends that session with the others.
ALTER TABLE users ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;
