-- The platform policy of the two tables the shallow health sweep reads every few seconds
-- (docs/decisions/051), as an InitPlan: `(SELECT onramp_is_platform())` is evaluated once per
-- statement instead of once per row. Same meaning (the function depends only on the role);
-- request_clinic on clinics applies to onramp_app alone and is unchanged.
ALTER POLICY platform ON clinics USING ((SELECT onramp_is_platform()));
ALTER POLICY platform ON clinic_health USING ((SELECT onramp_is_platform()));
