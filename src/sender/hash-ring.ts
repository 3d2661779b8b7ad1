// The consistent-hash ring of `shard` mode: each backend owns `virtualNodes` points on a 32-bit
// ring and a series belongs to the first point at or after its hash. Adding a backend takes
// over only the arcs in front of its own points, so only its share of the series moves.
//
// Hash: FNV-1a (32-bit) over the UTF-8 bytes, then murmur3's fmix32 finaliser (FNV alone
// clusters similar short keys such as "b-1", "b-2"). Virtual node i of backend B hashes
// "B#i"; a series hashes "<namespace>\n<series key>". Stable across versions on purpose:
// changing it would move every series.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function hash32(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return fmix32(fnvBytes(Buffer.from(text, 'utf8')));
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return fmix32(h);
}

function fnvBytes(bytes: Uint8Array): number {
  let h = FNV_OFFSET;
  for (const b of bytes) h = Math.imul(h ^ b, FNV_PRIME);
  return h;
}

function fmix32(x: number): number {
  let h = x;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class HashRing {
  /** Ring positions, ascending, and the backend index owning each. */
  private readonly points: Uint32Array;
  private readonly owners: Uint16Array;

  constructor(
    readonly nodes: readonly string[],
    readonly virtualNodes: number,
  ) {
    if (nodes.length === 0) throw new Error('HashRing: at least one node is needed');
    if (nodes.length > 0xffff) throw new Error('HashRing: at most 65535 nodes');
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1) throw new Error('HashRing: virtualNodes must be an integer >= 1');
    if (new Set(nodes).size !== nodes.length) throw new Error('HashRing: node names must be unique');
    const entries: Array<{ point: number; node: number; name: string }> = [];
    nodes.forEach((name, node) => {
      for (let i = 0; i < virtualNodes; i++) entries.push({ point: hash32(`${name}#${i}`), node, name });
    });
    // Ties (rare) are broken by name so every relay builds the same ring from the same config.
    entries.sort((a, b) => a.point - b.point || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.points = Uint32Array.from(entries, (e) => e.point);
    this.owners = Uint16Array.from(entries, (e) => e.node);
  }

  /** Index (into `nodes`) of the backend owning a key. */
  locate(key: string): number {
    return this.locateHash(hash32(key));
  }

  locateHash(h: number): number {
    const { points } = this;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === points.length ? 0 : lo] as number;
  }
}
