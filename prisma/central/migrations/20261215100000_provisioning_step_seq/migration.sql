-- The order steps were recorded in. Records carry milliseconds, and quick steps start and end in
-- one: the replay and a run's `steps` ordered such ties by random id, so a run's trail could come
-- back shuffled. Rows of one run are written one after the other (a step's row with its outcome).
ALTER TABLE provisioning_steps ADD COLUMN seq bigserial NOT NULL;
