/** The onboarding REST API's JSON shapes (snake_case, README "Onboarding service"), shared by the REST routes and their tests. */
import type { Onboarding } from '../../generated/central/client.js';
import type { OnboardingService, ProvisionResult } from './service.js';

export function onboardingMetadata(onboarding: Onboarding, isIdempotent?: boolean) {
  return {
    created_at: onboarding.createdAt.toISOString(),
    updated_at: onboarding.updatedAt.toISOString(),
    dns_configured: onboarding.dnsConfigured,
    ssl_configured: onboarding.sslConfigured,
    infrastructure_status: onboarding.infrastructureStatus,
    api_key_generated: onboarding.apiKeyHash !== null,
    provisioning_attempts: onboarding.provisioningAttempts,
    ...(isIdempotent === undefined ? {} : { is_idempotent: isIdempotent }),
  };
}

function identity(service: OnboardingService, onboarding: Onboarding) {
  return {
    uuid: onboarding.id,
    subdomain: onboarding.subdomain,
    full_domain: service.fullDomain(onboarding),
    url: service.url(onboarding),
    email: onboarding.email,
    organization_name: onboarding.organizationName,
    onboarding_status: onboarding.status,
  };
}

export function presentStart(service: OnboardingService, onboarding: Onboarding) {
  return { success: true, ...identity(service, onboarding) };
}

export function presentProvision(service: OnboardingService, result: ProvisionResult) {
  return {
    success: true,
    ...identity(service, result.onboarding),
    api_key: result.apiKey,
    api_secret: result.apiSecret,
    metadata: onboardingMetadata(result.onboarding, result.isIdempotent),
  };
}

export function presentStatus(service: OnboardingService, onboarding: Onboarding) {
  return {
    success: true,
    ...identity(service, onboarding),
    tenant_id: onboarding.tenantId,
    completed_at: onboarding.completedAt?.toISOString() ?? null,
    metadata: onboardingMetadata(onboarding),
  };
}

/** @param message in the answer's language (routes.ts) */
export function presentComplete(onboarding: Onboarding, message: string) {
  return {
    success: true,
    message,
    uuid: onboarding.id,
    onboarding_status: onboarding.status,
    tenant_id: onboarding.tenantId,
    completed_at: onboarding.completedAt?.toISOString() ?? null,
  };
}
