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
  const bytes = typeof buf === 'string' ? Buffer.from(buf, 'utf8') : buf;
  const { namespace, bodyStart } = readMessageHeader(bytes);
  return { namespace, body: bytes.toString('utf8', bodyStart) };
}

/**
 * decodeMessage without decoding the body: the namespace, and where the lines start in `buf`
 * (the relay reads them from the bytes). Throws with a reason as decodeMessage does.
 */
export function readMessageHeader(buf: Buffer): { namespace: string; bodyStart: number } {
  if (buf.length < HEADER.length || buf.toString('latin1', 0, HEADER.length) !== HEADER) throw new Error('message has no "# ns=" header line');
  const nl = buf.indexOf(10);
  const encoded = buf.toString('utf8', HEADER.length, nl === -1 ? buf.length : nl);
  let namespace: string;
  try {
    namespace = decodeURIComponent(encoded);
  } catch {
    throw new Error(`message header has a malformed namespace ${JSON.stringify(encoded.slice(0, 80))}`);
  }
  if (namespace === '') throw new Error('message header names an empty namespace');
  return { namespace, bodyStart: nl === -1 ? buf.length : nl + 1 };
}
