// Publishing test data for the relay with a raw nsqjs Writer in ns-agent's envelope format
// (`# ns=<ns>` + line protocol), independent of the NSQ publisher under development.
import { Writer } from 'nsqjs';
import { encodeMessage } from '../../src/publish/envelope.ts';
import type { NsqdHandle } from '../helpers/servers.ts';

export class TestWriter {
  private readonly writer: Writer;
  private readonly ready: Promise<void>;

  constructor(nsqd: NsqdHandle) {
    this.writer = new Writer('127.0.0.1', nsqd.tcpPort);
    this.ready = new Promise((resolve, reject) => {
      this.writer.once('ready', () => resolve());
      this.writer.on('error', reject);
    });
    this.writer.connect();
  }

  /** MPUBs the messages (raw bodies) in one command; resolves on nsqd's OK. */
  async publishRaw(topic: string, bodies: Array<string | Buffer>): Promise<void> {
    await this.ready;
    await new Promise<void>((resolve, reject) => this.writer.publish(topic, bodies as Buffer[], (err) => (err ? reject(err) : resolve())));
  }

  /** One message per group of lines, in the envelope format. */
  publish(topic: string, namespace: string, messages: string[][]): Promise<void> {
    return this.publishRaw(
      topic,
      messages.map((lines) => encodeMessage(namespace, lines)),
    );
  }

  close(): void {
    this.writer.close();
  }
}

/**
 * `count` unique points for a namespace as messages of `perMessage` lines: one series per
 * message index modulo `series`, a distinct timestamp per point, so InfluxDB's dedup
 * (series + time) counts each point once however often it is delivered.
 */
export function makeMessages(count: number, perMessage: number, opts: { measurement?: string; from?: number; series?: number } = {}): string[][] {
  const { measurement = 'relay_test', from = 0, series = 10 } = opts;
  const out: string[][] = [];
  for (let i = 0; i < count; i += perMessage) {
    const lines: string[] = [];
    for (let j = i; j < Math.min(count, i + perMessage); j++) {
      const n = from + j;
      lines.push(`${measurement},s=s${n % series} value=${n} ${1_600_000_000 + n}`);
    }
    out.push(lines);
  }
  return out;
}
