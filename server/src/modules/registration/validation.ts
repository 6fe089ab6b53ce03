/** Input rules of registerClinic. Every rule reports its own field; all are checked together. */
import { z } from 'zod';
import { COUNTRY_CODES } from '../../countries.js';
import { acceptancesSchema } from '../consents/service.js';
import { containsLinkOrPhone, emailSchema, passwordSchema, phoneSchema } from '../users/validation.js';

const name = (label: string) =>
  z
    .string()
    .trim()
    .min(1, { error: `${label} is required` })
    .max(100, { error: `${label} must be at most 100 characters` });

export const registerClinicSchema = z
  .object({
    clinicName: z
      .string()
      .trim()
      .min(2, { error: 'Clinic name must be at least 2 characters' })
      .max(120, { error: 'Clinic name must be at most 120 characters' })
      .refine((name) => !containsLinkOrPhone(name), {
        error: 'Clinic name must not contain a web address or a phone number',
      }),
    country: z
      .string()
      .trim()
      .toUpperCase()
      .refine((code) => COUNTRY_CODES.has(code), {
        error: 'Country must be an ISO 3166-1 alpha-2 code, e.g. FR',
      }),
    adminEmail: emailSchema,
    adminPassword: passwordSchema,
    adminFirstName: name('First name'),
    adminLastName: name('Last name'),
    adminPhone: phoneSchema.nullish(),
    acceptedDocuments: acceptancesSchema,
  })
  .superRefine((input, ctx) => {
    const password = input.adminPassword.toLowerCase();
    if (password === input.adminEmail || password === input.adminEmail.split('@')[0]) {
      ctx.addIssue({
        code: 'custom',
        path: ['adminPassword'],
        message: 'Password must not be your e-mail address',
      });
    }
  });

export type RegisterClinicInput = z.output<typeof registerClinicSchema>;
