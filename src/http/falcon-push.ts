// Open-Falcon push items → the shared Metric shape, for POST /api/push (and /v1/push, the
// Open-Falcon agent's own path). endpoint → host tag, metric → measurement, tags "k=v,k=v" →
// tags, value → value. counterType COUNTER/DERIVE is kept as a tag so dashboards can apply a
// derivative; GAUGE (the default) adds nothing. step is dropped: it is the reporting interval,
// not part of the value, and as a tag it would split a series whenever the interval changed.
import { setOwn, type Metric, type Rejection } from '../points/metric.ts';

export interface MappedPush {
  metrics: Metric[];
  /** `itemIndexes[i]` is the position in the request of `metrics[i]`. */
  itemIndexes: number[];
  /** Refused items, the first `maxListed` of them. */
  rejected: Rejection[];
  /** Every refused item, listed or not. */
  rejectedCount: number;
}

const COUNTER_TYPES = new Set(['GAUGE', 'COUNTER', 'DERIVE']);

/** Maps `items[from, to)` into `out`, so a large push can be mapped a slice at a time. */
export function mapFalconSlice(items: readonly unknown[], from: number, to: number, out: MappedPush, maxListed: number): void {
  for (let i = from; i < to; i++) {
    const result = mapItem(items[i]);
    if (typeof result === 'string') {
      out.rejectedCount++;
      if (out.rejected.length < maxListed) out.rejected.push({ index: i, reason: result });
    } else {
      out.metrics.push(result);
      out.itemIndexes.push(i);
    }
  }
}

/** The mapped metric, or why the item was refused. */
function mapItem(item: unknown): Metric | string {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    return 'an item must be an object with metric, endpoint, timestamp, step, value, counterType and tags';
  }
  const it = item as Record<string, unknown>;
  if (typeof it.metric !== 'string' || it.metric === '') return '"metric" must be a non-empty string';
  let value: number;
  if (typeof it.value === 'number') value = it.value;
  else if (typeof it.value === 'string' && it.value.trim() !== '') value = Number(it.value);
  else return '"value" must be a number (or a numeric string)';
  if (!Number.isFinite(value)) return `"value" ${JSON.stringify(String(it.value).slice(0, 40))} is not a finite number`;
  const tags: Record<string, string> = {};
  if (it.tags !== undefined && it.tags !== null && it.tags !== '') {
    const problem = parseTags(it.tags, tags);
    if (problem) return problem;
  }
  if (it.endpoint !== undefined && it.endpoint !== null && it.endpoint !== '') {
    if (typeof it.endpoint !== 'string') return '"endpoint" must be a string (the host name)';
    tags.host = it.endpoint;
  }
  if (it.counterType !== undefined && it.counterType !== null && it.counterType !== '') {
    const type = typeof it.counterType === 'string' ? it.counterType.toUpperCase() : '';
    if (!COUNTER_TYPES.has(type)) return '"counterType" must be GAUGE, COUNTER or DERIVE';
    if (type !== 'GAUGE') tags.counterType = type;
  }
  if (it.step !== undefined && it.step !== null && (typeof it.step !== 'number' || !(it.step >= 0))) {
    return '"step" must be a non-negative number of seconds';
  }
  let timestamp: number | undefined;
  if (it.timestamp !== undefined && it.timestamp !== null) {
    if (typeof it.timestamp !== 'number' || !Number.isFinite(it.timestamp)) return '"timestamp" must be a number of seconds';
    timestamp = it.timestamp;
  }
  const metric: Metric = { name: it.metric, value, tags };
  if (timestamp !== undefined) metric.timestamp = timestamp;
  return metric;
}

/** Open-Falcon's "k=v,k=v" string (or, leniently, an object of strings) into `into`. */
function parseTags(raw: unknown, into: Record<string, string>): string | undefined {
  if (typeof raw === 'string') {
    for (const pair of raw.split(',')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = eq === -1 ? '' : pair.slice(0, eq).trim();
      const value = eq === -1 ? '' : pair.slice(eq + 1).trim();
      if (key === '' || value === '') return `"tags" must be "k=v,k=v"; ${JSON.stringify(pair.slice(0, 40))} is not a k=v pair`;
      setOwn(into, key, value);
    }
    return undefined;
  }
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v !== 'string' && typeof v !== 'number') return `"tags" values must be strings; "${k.slice(0, 40)}" is not`;
      setOwn(into, k, String(v));
    }
    return undefined;
  }
  return '"tags" must be a "k=v,k=v" string';
}
