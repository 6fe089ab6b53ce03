-- Forced row-level security on subdomain_reservations, like every central table with a
-- clinic_id column (decision 011). Only the platform's connection (the subdomain allocator)
-- reads or writes it, so it gets the platform policy alone; the request role has no privilege on
-- it at all, as on sessions. Should a grant ever be added, requests would still see no row.
ALTER TABLE subdomain_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE subdomain_reservations FORCE ROW LEVEL SECURITY;

CREATE POLICY platform ON subdomain_reservations USING (onramp_is_platform());
