import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { Linkified } from './text';

describe('Linkified (the dev mailbox’s messages)', () => {
  it('opens a link in a new tab, so the operator’s console stays where it is, signed in', () => {
    // The README's step 5 clicks Marie's verification link in the Mailbox: her link is on
    // PUBLIC_URL (localhost), the console on the banner's address (127.0.0.1), another origin
    // whose session (sessionStorage) the tab would leave behind, with the one-time link spent.
    const html = renderToStaticMarkup(
      createElement(Linkified, { text: 'Confirm: http://localhost:4000/verify-email?token=abc now' }),
    );
    expect(html).toBe(
      'Confirm: <a href="http://localhost:4000/verify-email?token=abc" target="_blank" rel="noreferrer">http://localhost:4000/verify-email?token=abc</a> now',
    );
  });
});
