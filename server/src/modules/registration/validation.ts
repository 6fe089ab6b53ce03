/** Input rules of registerClinic. Every rule reports its own field; all are checked together. */
import { z } from 'zod';
import { COMMON_PASSWORDS } from './common-passwords.js';
import { COUNTRY_CODES } from './countries.js';

export const normaliseEmail = (email: string) => email.trim().toLowerCase();

export const emailSchema = z
  .string()
  .transform(normaliseEmail)
  .pipe(z.email({ error: 'Enter a valid e-mail address' }).max(254, { error: 'E-mail address is too long' }));

const name = (label: string) =>
  z
    .string()
    .trim()
    .min(1, { error: `${label} is required` })
    .max(100, { error: `${label} must be at most 100 characters` });

/** E.164 after removing spaces, dots, dashes and parentheses. */
export const phoneSchema = z
  .string()
  .transform((phone) => phone.replace(/[\s().-]/g, ''))
  .pipe(
    z
      .string()
      .regex(/^\+[1-9]\d{6,14}$/, { error: 'Phone must be in international format, e.g. +33612345678' }),
  );

/** The password rules of every account: length, not common. (Not the e-mail: checked where known.) */
export const passwordSchema = z
  .string()
  .min(12, { error: 'Password must be at least 12 characters' })
  // argon2 cost grows with input; nobody types more.
  .max(256, { error: 'Password must be at most 256 characters' })
  .refine((password) => !COMMON_PASSWORDS.has(password.toLowerCase()), {
    error: 'This password is too common; choose another',
  });

export const registerClinicSchema = z
  .object({
    clinicName: z
      .string()
      .trim()
      .min(2, { error: 'Clinic name must be at least 2 characters' })
      .max(120, { error: 'Clinic name must be at most 120 characters' }),
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
