// /log/offset against a real agent when another local user can write inside an allowed log
// folder (mode 1777): swapping a folder for a symlink while the agent resolves and opens a path,
// FIFOs, devices, and symlinks as the last component. Nothing outside the folders may come out,
// and nothing may block the agent.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/servers.ts';
import { runAgent, writeConfig, type AgentRun } from '../helpers/agent-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const TOKEN = 'race-test-token';
const SECRET = 'SECRET-7f3a9c-outside-the-log-folders';
const REQUESTS = 600;
const enc = encodeURIComponent;

// renameat2(RENAME_EXCHANGE) in a tight loop: the folder and the symlink trade places atomically,
// so at every instant one of them is a real folder holding an innocent file.
const SWAPPER = `
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
AT_FDCWD, RENAME_EXCHANGE = -100, 2
sys.stdout.write('swapping\\n'); sys.stdout.flush()
while True:
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        sys.exit('renameat2 failed: errno %d' % ctypes.get_errno())
`;

/** Starts exchanging `a` and `b` in a loop; resolves once the loop runs. */
async function startSwapper(a: string, b: string): Promise<ChildProcess> {
  const swapper = spawn('python3', ['-c', SWAPPER, a, b], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    swapper.stdout?.once('data', () => resolve());
    swapper.once('exit', (code) => reject(new Error(`swapper exited with ${code}`)));
  });
  return swapper;
}

describe('/log/offset on a log folder other users can write', () => {
  let dir: string;
  let logDir: string;
  let secretDir: string;
  let agent: AgentRun;
  let url: string;

  before(async () => {
    dir = tempDir('ns-agent-race-').dir;
    logDir = path.join(dir, 'shared-logs');
    secretDir = path.join(dir, 'secret');
    mkdirSync(logDir);
    chmodSync(logDir, 0o1777);
    mkdirSync(secretDir);
    writeFileSync(path.join(secretDir, 'shadow'), `${SECRET}\n`);
    writeFileSync(path.join(dir, 'registry.json'), JSON.stringify({ hosts: { '*': { namespaces: [] } } }));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const file = writeConfig(dir, {
      dataDir: 'data',
      log: { level: 'info', dir: 'log', pretty: 'always' },
      registry: { source: 'file', file: 'registry.json' },
      http: { listen: `127.0.0.1:${port}`, token: TOKEN, logDirs: [logDir] },
    });
    agent = runAgent(['start', '-f', file]);
    await agent.waitFor(/agent started/);
  });
  after(async () => {
    agent.child.kill('SIGTERM');
    await agent.exited;
  });

  const read = async (fpath: string) => {
    const res = await fetch(`${url}/log/offset?fpath=${enc(fpath)}&offset=0&num=5`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, text: await res.text() };
  };
  const healthy = async () => {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
  };

  test('a folder swapped with a symlink to a folder outside, in a loop: no answer holds the outside file', async () => {
    const att = path.join(logDir, 'att');
    mkdirSync(path.join(att, 'd'), { recursive: true });
    writeFileSync(path.join(att, 'd', 'shadow'), 'innocent line\n');
    symlinkSync(secretDir, path.join(att, 'link'));
    const swapper = await startSwapper(path.join(att, 'd'), path.join(att, 'link'));
    const statuses = new Map<number, number>();
    let leaked = 0;
    try {
      const target = path.join(att, 'd', 'shadow');
      // Four callers at a time keep the agent's resolve/open window busy while the swap runs.
      for (let i = 0; i < REQUESTS; i += 4) {
        const answers = await Promise.all([0, 1, 2, 3].map(() => read(target)));
        for (const a of answers) {
          statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
          if (a.text.includes(SECRET)) leaked++;
        }
      }
    } finally {
      swapper.kill('SIGKILL');
    }
    console.log(`race: ${REQUESTS} requests, answers by status ${JSON.stringify(Object.fromEntries(statuses))}, leaked ${leaked}`);
    assert.equal(leaked, 0, `${leaked} of ${REQUESTS} answers held the file outside the log folders`);
    assert.ok((statuses.get(200) ?? 0) > 0, 'the innocent file was still served while the folder was in place');
    await healthy();
  });

  test('a FIFO is refused with a 4xx at once and the agent keeps answering', async () => {
    const fifo = path.join(logDir, 'pipe.log');
    execFileSync('mkfifo', [fifo]);
    const r = await read(fifo);
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /not a regular file/);
    await healthy();
  });

  test('a log file swapped with a FIFO in a loop: every answer comes back (200 or 400), none hangs', async () => {
    const file = path.join(logDir, 'swap.log');
    const fifo = path.join(logDir, 'swap.fifo');
    writeFileSync(file, 'innocent line\n');
    execFileSync('mkfifo', [fifo]);
    const swapper = await startSwapper(file, fifo);
    const statuses = new Map<number, number>();
    try {
      // Each read has its own 10 s deadline (in read()): a blocked open or read fails the test.
      for (let i = 0; i < 200; i += 4) {
        for (const a of await Promise.all([0, 1, 2, 3].map(() => read(file)))) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      }
    } finally {
      swapper.kill('SIGKILL');
    }
    console.log(`fifo swap: 200 requests, answers by status ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 400), []);
    await healthy();
  });

  test('a symlink as the last component pointing outside is refused', async () => {
    symlinkSync(path.join(secretDir, 'shadow'), path.join(logDir, 'shadow.log'));
    const r = await read(path.join(logDir, 'shadow.log'));
    assert.equal(r.status, 403, r.text);
    assert.doesNotMatch(r.text, new RegExp(SECRET));
  });

  test('a device, linked or made inside the folder, is refused without a byte read', async () => {
    symlinkSync('/dev/zero', path.join(logDir, 'zero.log'));
    const linked = await read(path.join(logDir, 'zero.log'));
    assert.equal(linked.status, 403, linked.text);
    execFileSync('mknod', [path.join(logDir, 'null.log'), 'c', '1', '3']);
    const node = await read(path.join(logDir, 'null.log'));
    assert.equal(node.status, 400, node.text);
    assert.match(node.text, /not a regular file/);
    await healthy();
  });
});
