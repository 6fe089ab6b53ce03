import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

describe('logger', () => {
  it('redacts secrets, codes, tokens, passwords and credential headers', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ env: 'test', logLevel: 'info' }, sink);
    logger.info(
      {
        password: 'pw-1',
        token: 'tok-2',
        code: '123456',
        input: { adminPassword: 'pw-3', refreshToken: 'tok-4' },
        req: { headers: { authorization: 'Bearer tok-5', 'x-master-key': 'mk-6', accept: 'text/html' } },
        variables: { anything: 'var-7' },
      },
      'hello',
    );
    const output = lines.join('');
    for (const secret of ['pw-1', 'tok-2', '123456', 'pw-3', 'tok-4', 'tok-5', 'mk-6', 'var-7']) {
      expect(output).not.toContain(secret);
    }
    expect(output).toContain('text/html');
    expect(output).toContain('[redacted]');
  });

  it('logs errors without the objects hanging off them', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const error = Object.assign(new Error('connect ECONNREFUSED'), {
      code: 'ECONNREFUSED',
      client: { connectionParameters: { password: 'pg-secret' } },
    });
    createLogger({ env: 'test', logLevel: 'info' }, sink).error({ err: error }, 'failed');
    const entry = JSON.parse(lines[0] ?? '{}');
    expect(entry.err).toMatchObject({
      type: 'Error',
      message: 'connect ECONNREFUSED',
      errorCode: 'ECONNREFUSED',
    });
    expect(lines.join('')).not.toContain('pg-secret');
  });
});
