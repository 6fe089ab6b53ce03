/**
 * The test SMTP sink that `pnpm cluster` prints the super-admin's sign-in codes from: its
 * `describeMessage` line names the recipient by address, as the README's "Running several
 * instances" says it prints them (it printed mailparser's whole address object before).
 */
import nodemailer from 'nodemailer';
import { afterAll, describe, expect, it } from 'vitest';
import { describeMessage, startSmtpSink } from './smtp-sink.js';

const sink = await startSmtpSink();
afterAll(() => sink.stop());

describe('the SMTP sink', () => {
  it('describes a message by its recipients, subject and text', async () => {
    const transport = nodemailer.createTransport({ url: sink.url, logger: false });
    await transport.sendMail({
      from: 'Onramp <no-reply@onramp.localhost>',
      to: 'admin@onramp.localhost, other@example.com',
      subject: 'Your Onramp sign-in code',
      text: 'Your sign-in code is 123456.',
    });
    const message = await sink.waitFor((received) => received.subject === 'Your Onramp sign-in code');
    expect(describeMessage(message)).toBe(
      '[mail] to admin@onramp.localhost, other@example.com: Your Onramp sign-in code\nYour sign-in code is 123456.\n',
    );
  });
});
