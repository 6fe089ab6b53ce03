-- Session ends announced by the database itself, at commit, on the event bus's channel
-- (server/src/pubsub/postgres-event-target.ts, envelope { type, detail }): instances cache the
-- session check of requests and drop a user's entries on a `sessions` event
-- (server/src/modules/auth/session-cache.ts, decision 048). Triggers make every path count,
-- the application's and an operator's SQL alike: a session revoked, a user's role or clinic
-- changed (the token's claims no longer match), a user deleted. NOTIFY is transactional, so a
-- rolled-back change announces nothing.
CREATE FUNCTION onramp_notify_sessions_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(
    'onramp_events',
    json_build_object('type', 'sessions', 'detail', json_build_object('userId', OLD.user_id))::text
  );
  RETURN NULL;
END;
$$;

CREATE FUNCTION onramp_notify_user_sessions_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(
    'onramp_events',
    json_build_object('type', 'sessions', 'detail', json_build_object('userId', OLD.id))::text
  );
  RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
  FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
  EXECUTE FUNCTION onramp_notify_sessions_ended();

CREATE TRIGGER users_claims_changed AFTER UPDATE OF role, clinic_id ON users
  FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.clinic_id IS DISTINCT FROM NEW.clinic_id)
  EXECUTE FUNCTION onramp_notify_user_sessions_ended();

CREATE TRIGGER users_deleted AFTER DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION onramp_notify_user_sessions_ended();
