-- Built-in DNS zone and issued certificates (docs/decisions/009-dns-and-certificates.md).

-- Records of BASE_DOMAIN served by the built-in DNS server, read on every query so that every
-- instance answers the same thing the moment a record is written.
CREATE TABLE "dns_records" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "ttl" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "dns_records_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "dns_records_name_check" CHECK ("name" = lower("name") AND "name" <> '' AND right("name", 1) <> '.'),
    CONSTRAINT "dns_records_type_check" CHECK ("type" IN ('A', 'AAAA', 'CNAME', 'TXT')),
    CONSTRAINT "dns_records_ttl_check" CHECK ("ttl" BETWEEN 0 AND 2147483647)
);
CREATE UNIQUE INDEX "dns_records_name_type_value_key" ON "dns_records"("name", "type", "value");

-- Certificates issued per subdomain. At most one live (unrevoked) certificate per name; the
-- leaf's private key is stored AES-256-GCM encrypted with ENCRYPTION_KEY.
CREATE TABLE "certificates" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "fqdn" TEXT NOT NULL,
    "issuer" TEXT NOT NULL,
    "serial_number" TEXT NOT NULL,
    "certificate_pem" TEXT NOT NULL,
    "chain_pem" TEXT NOT NULL,
    "private_key_enc" TEXT NOT NULL,
    "not_before" TIMESTAMPTZ(3) NOT NULL,
    "not_after" TIMESTAMPTZ(3) NOT NULL,
    "revoked_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "certificates_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "certificates_issuer_check" CHECK ("issuer" IN ('builtin', 'acme')),
    CONSTRAINT "certificates_fqdn_check" CHECK ("fqdn" = lower("fqdn") AND "fqdn" <> '')
);
CREATE UNIQUE INDEX "certificates_issuer_serial_number_key" ON "certificates"("issuer", "serial_number");
CREATE UNIQUE INDEX "certificates_live_fqdn_key" ON "certificates"("fqdn") WHERE "revoked_at" IS NULL;
CREATE INDEX "certificates_fqdn_idx" ON "certificates"("fqdn");
