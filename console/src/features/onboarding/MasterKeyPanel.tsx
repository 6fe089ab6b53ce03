import { useEffect, useId, useRef, useState } from 'react';

/**
 * A master key, shown once. It lives only in the state of the page that received it (never in
 * urql's cache, storage or the console's logs) and is gone when the operator closes the panel,
 * leaves the page or reloads.
 */
export function MasterKeyPanel({
  applicationName,
  masterKey,
  rotated,
  onDone,
}: {
  applicationName: string;
  masterKey: string;
  rotated: boolean;
  onDone: () => void;
}) {
  const titleId = useId();
  const inputId = useId();
  const panel = useRef<HTMLElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const [copy, setCopy] = useState<'idle' | 'copied' | 'selected'>('idle');

  // The operator must notice it: focus (and so screen readers) move to the panel.
  useEffect(() => {
    panel.current?.focus();
  }, []);

  async function copyKey() {
    try {
      // Only on secure origins (https, localhost); elsewhere the key is selected for Ctrl+C.
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(masterKey);
      setCopy('copied');
    } catch {
      input.current?.focus();
      input.current?.select();
      setCopy('selected');
    }
  }

  return (
    <section
      ref={panel}
      tabIndex={-1}
      className="card key-panel"
      aria-labelledby={titleId}
      data-testid="master-key-panel"
    >
      <h2 id={titleId}>
        {rotated ? 'New master key' : 'Master key'} for {applicationName}
      </h2>
      <p className="notice notice-warn" role="alert">
        <strong>Copy it now: it will not be shown again.</strong>{' '}
        {rotated ? 'The previous key has stopped working. ' : 'Onramp keeps only a hash of it. '}
        If it is lost, rotate the key to get a new one.
      </p>
      <div className="field">
        <label htmlFor={inputId}>Master key (send it as the X-Master-Key header)</label>
        <div className="key-row">
          <input
            ref={input}
            id={inputId}
            className="key-value"
            readOnly
            value={masterKey}
            spellCheck={false}
            autoComplete="off"
            onFocus={(event) => event.currentTarget.select()}
          />
          <button type="button" className="button button-primary" onClick={copyKey}>
            Copy
          </button>
        </div>
      </div>
      <p className="hint" aria-live="polite">
        {copy === 'copied' && 'Copied to the clipboard.'}
        {copy === 'selected' &&
          'The clipboard is not available here: the key is selected, press Ctrl+C (⌘C).'}
      </p>
      <button type="button" className="button" onClick={onDone}>
        I have stored the key — hide it
      </button>
    </section>
  );
}
