/**
 * What the server tells the process that started it over an IPC channel (Node's `stdio: [..,
 * 'ipc']`, as process managers and the tests spawn it), whatever the log level: where it
 * listens, so a parent can start it on PORT=0 and learn the port it got instead of handing it a
 * port that another process may take first. Without a channel (a terminal, systemd, a
 * container) nothing is sent.
 */
import type { ChildProcess } from 'node:child_process';

/** Sent once the HTTP listener is up and the background work has started. */
export interface ListeningMessage {
  type: 'listening';
  /** Base URL of the listener, e.g. `http://127.0.0.1:4000`. */
  url: string;
}

export function isListeningMessage(message: unknown): message is ListeningMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === 'listening' &&
    typeof (message as { url?: unknown }).url === 'string'
  );
}

/** Sends the `listening` message if there is a parent to hear it; never throws. */
export function announceListening(url: string): void {
  if (!process.send || !process.connected) return;
  const message: ListeningMessage = { type: 'listening', url };
  // A parent that went away meanwhile is no reason to fail: the callback takes the error.
  process.send(message, undefined, undefined, () => {});
  // The channel must neither keep the server alive nor hold up its exit.
  process.channel?.unref();
}

/**
 * The parent's side: resolves with the URL of `child`'s `listening` message, then lets the channel
 * go (nothing else comes over it, and it must not keep the parent waiting). Rejects when the child
 * exits first or `budgetMs` pass, naming it `name` and ending with `output()` (e.g. its stderr).
 */
export function listeningUrl(
  child: ChildProcess,
  options: { budgetMs: number; name: string; output: () => string },
): Promise<string> {
  const { budgetMs, name, output } = options;
  return new Promise<string>((done, fail) => {
    const onMessage = (message: unknown) => {
      if (!isListeningMessage(message)) return;
      settle();
      if (child.connected) child.disconnect();
      done(message.url);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      settle();
      fail(new Error(`${name} exited with ${code ?? signal} before it listened; ${output()}`));
    };
    const timer = setTimeout(() => {
      settle();
      fail(new Error(`no 'listening' message from ${name} within ${budgetMs} ms; ${output()}`));
    }, budgetMs);
    const settle = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}
