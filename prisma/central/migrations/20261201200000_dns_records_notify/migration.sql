-- The built-in DNS server answers from a cache of the zone (modules/dns/zone-cache.ts). Every
-- change to dns_records, by any instance or by hand, tells every instance to reload it: one
-- notification per statement, delivered at commit (PostgreSQL folds identical ones of a
-- transaction into one).
CREATE FUNCTION onramp_dns_records_changed() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
BEGIN
  PERFORM pg_notify('onramp_dns_records', '{"type":"changed"}');
  RETURN NULL;
END
$$;

CREATE TRIGGER dns_records_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dns_records
  FOR EACH STATEMENT EXECUTE FUNCTION onramp_dns_records_changed();
