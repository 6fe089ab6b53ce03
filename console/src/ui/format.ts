/** `1.2 s`, `340 ms`, `2 min 5 s`; an em dash when unknown. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/**
 * `12 seconds ago`, `3 minutes ago`, … relative to `now`. Never in the future: a time a little
 * ahead of the browser's clock (the server's clock runs ahead of it) reads "now".
 */
export function formatAgo(iso: string, now = Date.now()): string {
  const seconds = Math.min(0, Math.round((Date.parse(iso) - now) / 1000));
  const abs = Math.abs(seconds);
  if (abs < 60) return relative.format(seconds, 'second');
  if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (abs < 86_400) return relative.format(Math.round(seconds / 3600), 'hour');
  return relative.format(Math.round(seconds / 86_400), 'day');
}

const dateTime = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
const time = new Intl.DateTimeFormat('en-GB', { timeStyle: 'medium' });

export const formatDateTime = (iso: string) => dateTime.format(new Date(iso));
const date = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium' });
export const formatDate = (iso: string) => date.format(new Date(iso));
export const formatTime = (iso: string) => time.format(new Date(iso));

/** The first block of a UUID, enough to tell clinics apart on screen. */
export const shortId = (id: string) => id.split('-')[0] ?? id;
