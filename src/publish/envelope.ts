// The NSQ message format: a comment line carrying the exact namespace, then line protocol.
// InfluxDB ignores `#` lines, so a message body is itself valid line protocol, and consumers
// never have to reverse the namespace → topic mapping.
//
//   # ns=<percent-encoded namespace>\n<line>\n<line>…

const HEADER = '# ns=';

export function encodeMessage(namespace: string, lines: readonly string[]): Buffer {
  return Buffer.from(`${HEADER}${encodeURIComponent(namespace)}\n${lines.join('\n')}`, 'utf8');
}

export function messageHeader(namespace: string): string {
  return `${HEADER}${encodeURIComponent(namespace)}\n`;
}

export interface DecodedMessage {
  namespace: string;
  /** Line protocol, newline separated, without the header. */
  body: string;
}

/** Throws with a reason when the body has no namespace header (not produced by ns-agent). */
export function decodeMessage(buf: Buffer | string): DecodedMessage {
  const text = typeof buf === 'string' ? buf : buf.toString('utf8');
  if (!text.startsWith(HEADER)) throw new Error('message has no "# ns=" header line');
  const nl = text.indexOf('\n');
  const encoded = text.slice(HEADER.length, nl === -1 ? undefined : nl);
  let namespace: string;
  try {
    namespace = decodeURIComponent(encoded);
  } catch {
    throw new Error(`message header has a malformed namespace ${JSON.stringify(encoded.slice(0, 80))}`);
  }
  if (namespace === '') throw new Error('message header names an empty namespace');
  return { namespace, body: nl === -1 ? '' : text.slice(nl + 1) };
}
