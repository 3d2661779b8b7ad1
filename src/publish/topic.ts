// Namespace → NSQ topic. NSQ allows [.a-zA-Z0-9_-], 1 to 64 characters. A namespace that is
// already a valid name maps to prefix + namespace; any other (or one whose plain form could be
// mistaken for a hashed one) maps to prefix + a readable cut + "--" + 10 hex digits of its
// SHA-256, so the mapping is collision-free. The exact namespace travels in the message.
import { createHash } from 'node:crypto';

const MAX = 64;
const VALID = /^[.a-zA-Z0-9_-]+$/;
const HASHED_SUFFIX = /--[0-9a-f]{10}$/;

export function topicFor(namespace: string, prefix = 'ns.'): string {
  const plain = prefix + namespace;
  if (VALID.test(namespace) && plain.length <= MAX && !HASHED_SUFFIX.test(namespace)) return plain;
  const hash = createHash('sha256').update(namespace, 'utf8').digest('hex').slice(0, 10);
  const readable = namespace
    .normalize('NFKD')
    .replace(/[^.a-zA-Z0-9_-]+/g, '_')
    .slice(0, MAX - prefix.length - 2 - hash.length);
  return `${prefix}${readable}--${hash}`;
}

export function isValidTopic(name: string): boolean {
  return name.length >= 1 && name.length <= MAX && VALID.test(name);
}
