/** Text that must read well when space is short: identifiers, timestamps, links in plain text. */
import { Fragment } from 'react';
import { formatAgo, formatDateTime } from './format';

/**
 * A long identifier (`onramp_clinic_lac_1a2b3c4d`, `host:5432`) that wraps only after its
 * separators, never in the middle of a word.
 */
export function Identifier({ children, className }: { children: string; className?: string }) {
  const pieces = children.split(/(?<=[_.:/-])/);
  return (
    <code className={className ? `identifier ${className}` : 'identifier'}>
      {pieces.map((piece, index) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: the pieces of one string, in order.
        <Fragment key={index}>
          {index > 0 && <wbr />}
          {piece}
        </Fragment>
      ))}
    </code>
  );
}

/** A date and time that never wraps, with the full form on hover. */
export function DateTime({ iso, relativeTo }: { iso: string; relativeTo?: number }) {
  return (
    <time dateTime={iso} title={formatDateTime(iso)} className="nowrap">
      {relativeTo === undefined ? formatDateTime(iso) : formatAgo(iso, relativeTo)}
    </time>
  );
}

const URL_PATTERN = /(https?:\/\/[^\s<>"']+)/g;

/**
 * Plain text with its http(s) URLs as links (a message of the dev mailbox), each opening in a new
 * tab: the message is someone else's (a clinic admin's verification link, on `PUBLIC_URL`, maybe
 * another origin than the console's), and following it in the console's own tab would leave the
 * operator's session behind.
 */
export function Linkified({ text }: { text: string }) {
  const parts = text.split(URL_PATTERN);
  return (
    <>
      {parts.map((part, index) =>
        index % 2 === 1 ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: the pieces of one string, in order.
          <a key={index} href={part} target="_blank" rel="noreferrer">
            {part}
          </a>
        ) : (
          // biome-ignore lint/suspicious/noArrayIndexKey: the pieces of one string, in order.
          <Fragment key={index}>{part}</Fragment>
        ),
      )}
    </>
  );
}
