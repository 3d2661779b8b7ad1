// Which NSQ topics the relay consumes: the registry's namespaces mapped with topicFor(), and/or
// the topics nsqlookupd knows (GET /topics) that carry our prefix. A lookupd that fails keeps
// its last good answer, so one unreachable lookupd never makes topics disappear.
import type { Logger } from 'pino';
import { isValidTopic, topicFor } from '../topic-names.ts';
import type { RegistryView } from '../registry/types.ts';

/** The registry's namespaces as the relay sees them; the composition root adapts RegistryView. */
export interface NamespaceSource {
  current(): readonly string[];
  /** Called after the namespaces changed; the relay refreshes its topics then. */
  onChange(listener: () => void): void;
}

/** The registry's namespaces for the relay: `namespacesFromRegistry(registryView)`. */
export function namespacesFromRegistry(registry: Pick<RegistryView, 'current' | 'onChange'>): NamespaceSource {
  return {
    current: () => registry.current().namespaces,
    onChange: (listener) => registry.onChange(() => listener()),
  };
}

export interface TopicSourceOptions {
  topicsFrom: 'registry' | 'lookupd' | 'both';
  topicPrefix: string;
  namespaces?: NamespaceSource;
  lookupdHttpAddresses: readonly string[];
  /** Per lookupd request. */
  timeoutMs: number;
  logger: Logger;
  fetch?: typeof fetch;
}

const MAX_LOOKUPD_ANSWER_BYTES = 8 * 1024 * 1024;

export class TopicSource {
  private readonly opts: TopicSourceOptions;
  private readonly lastGood = new Map<string, string[]>();
  private readonly fetchFn: typeof fetch;
  readonly stats = { lookupdPolls: 0, lookupdFailures: 0 };

  constructor(opts: TopicSourceOptions) {
    if (opts.topicsFrom !== 'lookupd' && !opts.namespaces) {
      throw new Error(`relay.topicsFrom is "${opts.topicsFrom}" but no namespace source was given (use "lookupd", or pass the registry)`);
    }
    if (opts.topicsFrom !== 'registry' && opts.lookupdHttpAddresses.length === 0) {
      throw new Error(`relay.topicsFrom is "${opts.topicsFrom}": set relay.lookupdHttpAddresses`);
    }
    this.opts = opts;
    this.fetchFn = opts.fetch ?? fetch;
  }

  /** The topics to consume now, sorted. */
  async topics(): Promise<string[]> {
    const { topicsFrom, topicPrefix, namespaces } = this.opts;
    const out = new Set<string>();
    if (topicsFrom !== 'lookupd' && namespaces) {
      for (const ns of namespaces.current()) out.add(topicFor(ns, topicPrefix));
    }
    if (topicsFrom !== 'registry') {
      const answers = await Promise.all(this.opts.lookupdHttpAddresses.map((a) => this.lookupdTopics(a)));
      for (const list of answers) {
        for (const t of list) if (t.startsWith(topicPrefix) && isValidTopic(t)) out.add(t);
      }
    }
    return [...out].sort();
  }

  private async lookupdTopics(address: string): Promise<string[]> {
    this.stats.lookupdPolls++;
    const url = `http://${address}/topics`;
    try {
      const res = await this.fetchFn(url, { signal: AbortSignal.timeout(this.opts.timeoutMs), headers: { accept: 'application/json' } });
      const text = await res.text();
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
      if (text.length > MAX_LOOKUPD_ANSWER_BYTES) throw new Error(`answer of ${text.length} characters is over the limit`);
      // nsqlookupd 1.x: {"topics": […]}; before 1.0: {"status_code": 200, "data": {"topics": […]}}.
      const body = JSON.parse(text) as { topics?: unknown; data?: { topics?: unknown } };
      const topics = body.topics ?? body.data?.topics;
      if (!Array.isArray(topics) || !topics.every((t) => typeof t === 'string')) throw new Error('answer has no "topics" list of strings');
      this.lastGood.set(address, topics);
      return topics;
    } catch (err) {
      this.stats.lookupdFailures++;
      const kept = this.lastGood.get(address) ?? [];
      this.opts.logger.warn({ lookupd: address, error: (err as Error).message, keptTopics: kept.length }, 'nsqlookupd topic poll failed; keeping its last answer');
      return kept;
    }
  }
}
