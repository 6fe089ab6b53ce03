-- Wrong codes since the e-mail's last right one (docs/decisions/087): the guessing window grows
-- with them, so rotating codes across windows buys fewer and fewer guesses.
ALTER TABLE login_codes ADD COLUMN failed_since_success integer NOT NULL DEFAULT 0;
