// Namespace → NSQ topic, shared by the publishers, the relay and the file sink (which names its
// files the same way, without the prefix). NSQ allows [.a-zA-Z0-9_-], 1 to 64 characters. A namespace that is
// already a valid name maps to prefix + namespace; any other (or one whose plain form could be
// mistaken for a hashed one) maps to prefix + a readable cut + "--" + 16 hex digits (64 bits) of
// its SHA-256. Plain names are injective by construction and never end like a hashed one, so
// two namespaces share a topic only on a 64-bit hash collision; even then nothing mixes, since
// the exact namespace travels in every message (publish/envelope.ts) and the relay reads it from there.
import { createHash } from 'node:crypto';

const MAX = 64;
const HASH_HEX = 16;
const VALID = /^[.a-zA-Z0-9_-]+$/;
const HASHED_SUFFIX = new RegExp(`--[0-9a-f]{${HASH_HEX}}$`);

export function topicFor(namespace: string, prefix = 'ns.'): string {
  const plain = prefix + namespace;
  if (VALID.test(namespace) && plain.length <= MAX && !HASHED_SUFFIX.test(namespace)) return plain;
  const hash = createHash('sha256').update(namespace, 'utf8').digest('hex').slice(0, HASH_HEX);
  const readable = namespace
    .normalize('NFKD')
    // Accents split off by NFKD are dropped, so "équipe" reads "equipe", not "e_quipe".
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^.a-zA-Z0-9_-]+/g, '_')
    .slice(0, Math.max(0, MAX - prefix.length - 2 - HASH_HEX));
  return `${prefix}${readable}--${hash}`;
}

export function isValidTopic(name: string): boolean {
  return name.length >= 1 && name.length <= MAX && VALID.test(name);
}
