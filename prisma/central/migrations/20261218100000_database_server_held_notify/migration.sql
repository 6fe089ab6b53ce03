-- Which recorded server a held one stands in for (docs/decisions/090, 094): the console's accept
-- names both. No foreign key: database_servers rows are never deleted.
ALTER TABLE database_servers ADD COLUMN held_for_id uuid;

-- A hold or its end announced by the database itself, at commit, on the event bus's channel
-- (server/src/pubsub/postgres-event-target.ts, envelope { type, detail }), as the session ends are
-- (migration 20261210500100_session_end_notify): every path counts, an instance's start or
-- refresh, the console's accept, `pnpm clinics:servers accept` from a shell, an operator's SQL.
-- The console's held-server notice reads databaseServers again on it (databaseServerChanged).
CREATE FUNCTION onramp_notify_database_server_hold() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(
    'onramp_events',
    json_build_object('type', 'databaseServers', 'detail', json_build_object('serverId', NEW.id))::text
  );
  RETURN NULL;
END;
$$;

CREATE TRIGGER database_servers_held AFTER INSERT ON database_servers
  FOR EACH ROW WHEN (NEW.held_reason IS NOT NULL)
  EXECUTE FUNCTION onramp_notify_database_server_hold();

CREATE TRIGGER database_servers_hold_changed AFTER UPDATE OF held_reason ON database_servers
  FOR EACH ROW WHEN (OLD.held_reason IS DISTINCT FROM NEW.held_reason)
  EXECUTE FUNCTION onramp_notify_database_server_hold();
