-- Tenant isolation inside the central database (decision 011).
--
-- Requests made on behalf of a clinic member go through a connection logged in as a member of
-- `onramp_app`: not the owner of any table, no BYPASSRLS, privileges only on the clinic-scoped
-- tables below. Each of its transactions first sets `onramp.clinic_id`, `onramp.role` and
-- `onramp.user_id` (set_config(..., true): the values die with the transaction), and the
-- policies only show rows of that clinic. A forgotten `WHERE clinic_id = …` in a request
-- therefore returns nothing of another clinic instead of leaking it.
--
-- Platform work (sign-in lookups, provisioning, the reconciler, jobs) runs on the owner's
-- connection; FORCE applies the policies to the owner too, so it gets its own policy.

DO $$
BEGIN
  CREATE ROLE onramp_app NOLOGIN NOINHERIT;
EXCEPTION WHEN duplicate_object THEN NULL;
END
$$;

CREATE FUNCTION onramp_request_clinic() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('onramp.clinic_id', true), '')::uuid $$;

CREATE FUNCTION onramp_request_user() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('onramp.user_id', true), '')::uuid $$;

CREATE FUNCTION onramp_request_is_super_admin() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(current_setting('onramp.role', true), '') = 'SUPER_ADMIN' $$;

-- True for every role except the request role and its members (superusers bypass RLS anyway).
CREATE FUNCTION onramp_is_platform() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NOT pg_has_role(current_user, 'onramp_app', 'USAGE') $$;

GRANT SELECT, INSERT, UPDATE, DELETE
  ON companies, clinics, users, client_records, audit_log, provisioning_runs, provisioning_steps
  TO onramp_app;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO onramp_app;

ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
ALTER TABLE clinics ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinics FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE client_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_records FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
ALTER TABLE provisioning_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE provisioning_runs FORCE ROW LEVEL SECURITY;
ALTER TABLE provisioning_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE provisioning_steps FORCE ROW LEVEL SECURITY;

CREATE POLICY platform ON companies USING (onramp_is_platform());
CREATE POLICY platform ON clinics USING (onramp_is_platform());
CREATE POLICY platform ON users USING (onramp_is_platform());
CREATE POLICY platform ON client_records USING (onramp_is_platform());
CREATE POLICY platform ON audit_log USING (onramp_is_platform());
CREATE POLICY platform ON provisioning_runs USING (onramp_is_platform());
CREATE POLICY platform ON provisioning_steps USING (onramp_is_platform());

CREATE POLICY request_clinic ON companies TO onramp_app
  USING (onramp_request_is_super_admin()
    OR id IN (SELECT company_id FROM clinics WHERE id = onramp_request_clinic()));
CREATE POLICY request_clinic ON clinics TO onramp_app
  USING (onramp_request_is_super_admin() OR id = onramp_request_clinic());
CREATE POLICY request_clinic ON users TO onramp_app
  USING (onramp_request_is_super_admin()
    OR clinic_id = onramp_request_clinic()
    OR id = onramp_request_user());
CREATE POLICY request_clinic ON client_records TO onramp_app
  USING (onramp_request_is_super_admin() OR clinic_id = onramp_request_clinic());
CREATE POLICY request_clinic ON audit_log TO onramp_app
  USING (onramp_request_is_super_admin() OR clinic_id = onramp_request_clinic());
CREATE POLICY request_clinic ON provisioning_runs TO onramp_app
  USING (onramp_request_is_super_admin() OR clinic_id = onramp_request_clinic());
CREATE POLICY request_clinic ON provisioning_steps TO onramp_app
  USING (onramp_request_is_super_admin()
    OR run_id IN (SELECT id FROM provisioning_runs WHERE clinic_id = onramp_request_clinic()));
