-- Lockouts and send limits, shared by every instance (sign-in failures, code requests).

CREATE TABLE "rate_limits" (
    "scope" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "window_started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lockouts" INTEGER NOT NULL DEFAULT 0,
    "blocked_until" TIMESTAMPTZ(3),
    CONSTRAINT "rate_limits_pkey" PRIMARY KEY ("scope", "key")
);
CREATE INDEX "rate_limits_window_started_at_idx" ON "rate_limits"("window_started_at");
