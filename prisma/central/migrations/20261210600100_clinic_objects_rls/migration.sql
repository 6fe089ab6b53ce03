-- Forced row-level security on clinic_objects (the ledger of clinic databases and roles), like
-- every central table with a clinic_id column (decision 011). Only the platform's connection (the
-- saga, the reconciler, the purge) reads or writes it: the platform policy alone, and no privilege
-- for the request role, as on subdomain_reservations.
ALTER TABLE clinic_objects ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic_objects FORCE ROW LEVEL SECURITY;

CREATE POLICY platform ON clinic_objects USING (onramp_is_platform());
