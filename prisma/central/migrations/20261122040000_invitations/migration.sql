-- Invitations: members invited by SMS may have no e-mail; activation codes (HMAC only).

ALTER TABLE "users" ALTER COLUMN "email" DROP NOT NULL;
ALTER TABLE "users" DROP CONSTRAINT "users_email_normalised_check";
ALTER TABLE "users" ADD CONSTRAINT "users_email_normalised_check" CHECK ("email" IS NULL OR ("email" = lower(btrim("email")) AND "email" <> ''));
ALTER TABLE "users" ADD CONSTRAINT "users_contact_check" CHECK ("email" IS NOT NULL OR "phone" IS NOT NULL);
CREATE UNIQUE INDEX "users_phone_key" ON "users"("phone");

CREATE TABLE "activation_codes" (
    "user_id" UUID NOT NULL,
    "code_hmac" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "failed_attempts" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "activation_codes_pkey" PRIMARY KEY ("user_id"),
    CONSTRAINT "activation_codes_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
