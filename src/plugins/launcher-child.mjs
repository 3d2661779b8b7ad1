// The plugin launcher: a small long-lived Node process (plain JavaScript, nothing imported but
// Node's own modules) that starts plugin processes for the agent. Forking the agent's large heap
// for every run costs the agent and each child far more CPU than forking this one.
//
// Requests come as JSON lines on stdin, answers go as JSON lines on stdout:
//   → {"op":"run","id":1,"bash":…,"script":…,"args":[…],"dir":…,"env":{…},"uid":…,"gid":…,
//      "timeoutMs":…,"killGraceMs":…,"maxOutputBytes":…,"stderrRingBytes":…}
//   → {"op":"stop","id":1}                    end the run as at a timeout (the agent stops)
//   ← {"id":1,"started":pid}                  so the agent can kill the group if we die
//   ← {"id":1,"done":{pid,exitCode,signal,timedOut,outputCapped,stdout(base64),stderrTail,durationMs,failure}}
// Each plugin gets its own process group; the deadline sends SIGTERM then SIGKILL to the group;
// stdout is capped (the group is killed past the cap); stderr keeps its tail. When stdin closes
// (the agent is gone), every group still running is killed and the launcher exits.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { clearTimeout, setTimeout } from 'node:timers';

/** After the leader exits, how long its stdio may stay open (held by an escaped grandchild). */
const DRAIN_AFTER_EXIT_MS = 500;
/** After SIGKILL, how long to wait for the exit before giving up on the process. */
const GIVE_UP_AFTER_KILL_MS = 2000;

/** id → { pid, terminate(why) } of the runs in progress. */
const runs = new Map();

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function killGroup(pid, signal) {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Keeps the last `max` bytes pushed. */
function byteRing(max) {
  const chunks = [];
  let size = 0;
  return {
    push(chunk) {
      if (max <= 0) return;
      chunks.push(chunk);
      size += chunk.length;
      while (chunks.length > 1 && size - chunks[0].length >= max) size -= chunks.shift().length;
    },
    text() {
      const all = Buffer.concat(chunks);
      return all.subarray(Math.max(0, all.length - max)).toString('utf8');
    },
  };
}

function run(req) {
  const started = performance.now();
  const stdoutChunks = [];
  let stdoutBytes = 0;
  const stderr = byteRing(req.stderrRingBytes);
  let exitCode = null;
  let exitSignal = null;
  let timedOut = false;
  let outputCapped = false;
  let failure = null;
  let terminating = false;
  let done = false;
  // Set once the process exited: a deadline or stop arriving while its pipes drain changes nothing.
  let exited = false;
  const timers = [];

  let child;
  try {
    child = spawn(req.bash, [req.script, ...req.args], {
      cwd: req.dir,
      env: req.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(req.uid !== undefined ? { uid: req.uid, gid: req.gid } : {}),
    });
  } catch (err) {
    send({ id: req.id, done: outcome(null, `cannot start the plugin: ${err.message}`) });
    return;
  }
  const pid = child.pid ?? null;
  if (pid !== null) send({ id: req.id, started: pid });

  function outcome(p, why) {
    return {
      pid: p,
      exitCode,
      signal: exitSignal,
      timedOut,
      outputCapped,
      stdout: Buffer.concat(stdoutChunks).toString('base64'),
      stderrTail: stderr.text(),
      durationMs: performance.now() - started,
      failure: why,
    };
  }

  function finish() {
    if (done) return;
    done = true;
    for (const t of timers) clearTimeout(t);
    runs.delete(req.id);
    child.stdout?.destroy();
    child.stderr?.destroy();
    send({ id: req.id, done: outcome(pid, failure) });
  }

  function terminate() {
    if (terminating) return;
    terminating = true;
    killGroup(pid, 'SIGTERM');
    timers.push(
      setTimeout(() => {
        killGroup(pid, 'SIGKILL');
        timers.push(
          setTimeout(() => {
            failure ??= `the process did not exit ${GIVE_UP_AFTER_KILL_MS} ms after SIGKILL`;
            finish();
          }, GIVE_UP_AFTER_KILL_MS),
        );
      }, req.killGraceMs),
    );
  }

  child.on('error', (err) => {
    // Not started (missing bash, working directory not reachable): there is no pid.
    if (pid === null) {
      failure ??= `cannot start the plugin: ${err.message}`;
      finish();
    }
  });
  if (pid === null) return;
  runs.set(req.id, {
    pid,
    stop(why) {
      // A process that already exited (its pipes still draining) finished: it was not stopped.
      if (exited) return;
      failure ??= why;
      terminate();
    },
  });

  child.stdout.on('data', (chunk) => {
    if (outputCapped) return;
    if (stdoutBytes + chunk.length > req.maxOutputBytes) {
      // A plugin spewing output must be stopped, not only ignored.
      outputCapped = true;
      stdoutChunks.push(chunk.subarray(0, req.maxOutputBytes - stdoutBytes));
      stdoutBytes = req.maxOutputBytes;
      child.stdout.destroy();
      terminate();
      return;
    }
    stdoutChunks.push(chunk);
    stdoutBytes += chunk.length;
  });
  child.stderr.on('data', (chunk) => stderr.push(chunk));
  // A destroyed or broken pipe is part of how a run ends.
  child.stdout.on('error', () => {});
  child.stderr.on('error', () => {});

  child.on('exit', (code, signal) => {
    exited = true;
    exitCode = code;
    exitSignal = signal;
    // What the plugin left behind in its group dies with it; this also closes the pipes those
    // processes hold, so the run ends now and not when they do.
    killGroup(pid, 'SIGKILL');
    timers.push(setTimeout(finish, DRAIN_AFTER_EXIT_MS));
  });
  // Exited and both pipes closed.
  child.on('close', finish);

  timers.push(
    setTimeout(() => {
      if (exited) return;
      timedOut = true;
      terminate();
    }, req.timeoutMs),
  );
}

// A terminal's Ctrl-C or hang-up reaches the whole foreground group: the agent decides when
// runs end (it sends "stop"), and we end when it closes our stdin.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    process.stderr.write(`launcher: not a JSON request: ${line.slice(0, 200)}\n`);
    return;
  }
  if (req.op === 'run') run(req);
  else if (req.op === 'stop') runs.get(req.id)?.stop('stopped: the agent is shutting down');
});
// The agent is gone (stdin closed) or ends us (SIGTERM, sent as it exits): no run may outlive it.
function exitNow() {
  for (const r of runs.values()) killGroup(r.pid, 'SIGKILL');
  process.exit(0);
}
lines.on('close', exitNow);
process.on('SIGTERM', exitNow);
