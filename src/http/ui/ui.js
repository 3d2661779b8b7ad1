// The /ui page: polls /me/status, /me/history and /plugins/list every few seconds while the tab
// is visible, and draws what they say; every number shown is one of theirs (rates are derived
// from their totals). No framework and no external resource; text is only ever set as text.
// The token typed in stays in this script's memory: gone when the tab is closed or reloaded.
/* global document, fetch, setTimeout, clearTimeout, URLSearchParams, TextEncoder, CSS */

const POLL_MS = 2000;
const LOG_WINDOW_BYTES = 64 * 1024;
const LOG_MAX_LINES = 2000;
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = {
  token: '',
  timer: undefined,
  busy: false,
  stderrOpen: new Set(),
  log: { start: null, lines: [], components: new Set(), needsToken: false },
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c);
  return e;
}

// ---- requests -------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = 'GET' } = {}) {
  const headers = {};
  if (state.token !== '') headers.Authorization = `Bearer ${state.token}`;
  const r = await fetch(path, { method, headers, cache: 'no-store', credentials: 'same-origin' });
  let body;
  try {
    body = await r.json();
  } catch {
    throw new HttpError(r.status, `${path}: answered ${r.status} without JSON`);
  }
  if (!r.ok || !body.ok) throw new HttpError(r.status, body.error ?? `${path}: HTTP ${r.status}`);
  return body.data;
}

function notice(text, isError = false) {
  const n = $('notice');
  n.textContent = text ?? '';
  n.hidden = !text;
  n.className = isError ? 'notice error' : 'notice';
}

function needToken(what) {
  notice(`${what} needs the agent's http.token: type it in the token box at the top right, then try again.`, true);
  $('token').focus();
}

// ---- formatting -----------------------------------------------------------------------------

function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (Number.isInteger(v)) return String(v);
  return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(1) : v.toFixed(2);
}

function ago(ms) {
  if (ms === null || ms === undefined) return 'never';
  const t = typeof ms === 'string' ? Date.parse(ms) : ms;
  if (!Number.isFinite(t)) return String(ms);
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 0) return `in ${dur(-s)}`;
  return `${dur(s)} ago`;
}

function dur(s) {
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

// ---- health ---------------------------------------------------------------------------------

function problemsOf(status, history, plugins) {
  const bad = [];
  const warn = [];
  for (const p of Array.isArray(status.registry) ? status.registry : []) {
    if (p.lastError && (!p.lastSuccessAt || (p.lastErrorAt ?? 0) >= p.lastSuccessAt)) {
      bad.push(`registry poller "${p.name}" is failing: ${p.lastError}`);
    }
  }
  const sender = status.sender ?? {};
  for (const [name, b] of Object.entries(sender.backends ?? {})) {
    if (b.downSince) bad.push(`backend ${name} is down since ${ago(b.downSince)}${b.lastError ? `: ${b.lastError.message}` : ''}`);
  }
  if (sender.writeErrors > 0) warn.push(`the line-protocol file sink had ${sender.writeErrors} write errors`);
  const spool = status.publish?.spool;
  if (spool && spool.bytes > 0) warn.push(`the spool holds ${num(spool.bytes)} bytes; the oldest is ${dur(Math.round(spool.oldestAgeSec ?? 0))} old`);
  for (const link of Array.isArray(status.publish?.nsqd) ? status.publish.nsqd : []) {
    if (link.state === 'down') bad.push(`nsqd ${link.address} is down${link.lastError ? `: ${link.lastError}` : ''}`);
  }
  const relay = status.relay;
  if (relay && Array.isArray(relay.paused) && relay.paused.length > 0) warn.push(`the relay is paused: ${relay.paused.join(', ')}`);
  const idle = Object.entries(relay?.topics ?? {}).filter(([, t]) => t && t.connections === 0).map(([name]) => name);
  if (idle.length > 0) warn.push(`the relay has no nsqd connection for ${idle.join(', ')}`);
  if (relay && Array.isArray(relay.refusedTopics) && relay.refusedTopics.length > 0) warn.push(`the relay refused topics: ${relay.refusedTopics.join(', ')}`);
  for (const [name, s] of Object.entries(history?.series ?? {})) {
    if (!name.startsWith('drop:') || s.kind !== 'counter') continue;
    const d = growth(s.v);
    if (d > 0) warn.push(`${label(name)}: ${num(d)} in the last ${dur(windowSec(history))}`);
  }
  for (const p of plugins ?? []) {
    if (p.problem) warn.push(`plugin ${p.namespace}/${p.name}: ${p.problem}`);
    else if (p.enabled && p.lastRun && p.lastRun.success === false) warn.push(`plugin ${p.namespace}/${p.name} failed its last run: ${p.lastRun.error ?? `exit ${p.lastRun.exitCode}`}`);
  }
  return { bad, warn };
}

function growth(values) {
  const v = values.filter((x) => x !== null);
  return v.length < 2 ? 0 : Math.max(0, v[v.length - 1] - v[0]);
}

function windowSec(history) {
  const t = history.t;
  return t.length < 2 ? 0 : Math.round((t[t.length - 1] - t[0]) / 1000);
}

function renderHealth(status, history, plugins) {
  $('host').textContent = status.hostname ?? 'ns-agent';
  $('ident').textContent = `${status.role ?? 'agent'} ${status.version ?? ''} · pid ${status.pid ?? '?'} · up ${dur(status.uptimeSec ?? 0)}`;
  document.title = `${status.hostname ?? 'ns-agent'} · ns-agent`;
  const { bad, warn } = problemsOf(status, history, plugins);
  const badge = $('health');
  badge.className = `badge ${bad.length ? 'bad' : warn.length ? 'warn' : 'ok'}`;
  badge.textContent = bad.length ? 'failing' : warn.length ? 'degraded' : 'healthy';
  $('problems').replaceChildren(...[...bad, ...warn].map((t) => el('li', { text: t })));
}

// ---- pipeline -------------------------------------------------------------------------------

function renderRegistry(status) {
  const rows = (Array.isArray(status.registry) ? status.registry : []).map((p) =>
    el(
      'tr',
      {},
      el('td', { text: p.name }),
      el('td', { text: `${p.source ?? ''} ${p.location ?? ''}`.trim() }),
      el('td', { class: p.lastSuccessAt ? 'ok' : 'muted', text: ago(p.lastSuccessAt) }),
      el('td', { class: p.lastError ? 'err' : 'muted', text: p.lastError ? `${p.lastError} (${ago(p.lastErrorAt)})` : '–' }),
    ),
  );
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'empty', text: 'no registry in this role' })));
  $('registry').tBodies[0].replaceChildren(...rows);
}

/** Per-second rates between consecutive samples of a running total (null where unknown). */
function rates(t, v, intervalSec) {
  const out = [];
  for (let i = 1; i < v.length; i++) {
    // The last sample is taken at the request: measure it against a full interval back.
    let j = i - 1;
    while (j > 0 && (t[i] - t[j]) / 1000 < intervalSec * 0.5) j--;
    const dt = (t[i] - t[j]) / 1000;
    out.push(v[i] === null || v[j] === null || dt <= 0 ? null : Math.max(0, (v[i] - v[j]) / dt));
  }
  return out;
}

function label(name) {
  const [group, ...rest] = name.split(':');
  if (group === 'drop') return rest.join(':').replace(/\./g, ' › ');
  if (group === 'ns' || group === 'backend') return `${rest.slice(0, -1).join(':')} · ${rest[rest.length - 1]}`;
  if (group === 'points') return `all namespaces · ${rest.join(':')}`;
  return `${group} · ${rest.join(':')}`;
}

function spark(container, name, series, history, { alert = false } = {}) {
  let card = container.querySelector(`[data-series="${CSS.escape(name)}"]`);
  if (!card) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 100 32');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.append(document.createElementNS(SVG_NS, 'polyline'));
    card = el('div', { class: 'spark', 'data-series': name }, el('div', { class: 'name', text: label(name), title: name }), el('div', { class: 'value' }), svg);
    container.append(card);
  }
  const counter = series.kind === 'counter';
  const values = counter ? rates(history.t, series.v, history.intervalSec) : series.v;
  const known = values.filter((x) => x !== null);
  const max = Math.max(...known, 0) || 1;
  const n = values.length;
  const pts = [];
  values.forEach((x, i) => {
    if (x === null) return;
    pts.push(`${n > 1 ? ((i / (n - 1)) * 100).toFixed(2) : 100},${(31 - (x / max) * 29).toFixed(2)}`);
  });
  card.querySelector('polyline').setAttribute('points', pts.join(' '));
  const current = known.length ? known[known.length - 1] : null;
  const total = series.v[series.v.length - 1];
  const value = card.querySelector('.value');
  value.replaceChildren(counter ? `${num(current)}/s` : num(current));
  if (counter) value.append(el('span', { class: 'total', text: `total ${num(total)}` }));
  value.dataset.current = String(current ?? '');
  value.dataset.total = String(total ?? '');
  card.classList.toggle('alert', alert);
}

function renderSparks(history, status) {
  const groups = { ns: [], backend: [], spool: [], drop: [] };
  const totals = [];
  // Per namespace and backend: in, then out, then trouble; in the order of the pipeline.
  const ORDER = ['in', 'recv', 'accepted', 'sent', 'queued', 'refused', 'failed', 'dropped'];
  const rank = (name) => {
    const parts = name.split(':');
    const i = ORDER.indexOf(parts[parts.length - 1]);
    return `${parts.slice(0, -1).join(':')}\u0000${i < 0 ? 9 : i}${parts[parts.length - 1]}`;
  };
  for (const name of Object.keys(history.series).sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0))) {
    const g = name.split(':')[0];
    if (g === 'points') totals.push(name);
    else if (groups[g]) groups[g].push(name);
  }
  groups.ns = [...totals, ...groups.ns];
  const draw = (id, names, opts = () => ({}), empty = 'nothing here in this role') => {
    const box = $(id);
    const keep = new Set(names);
    for (const c of [...box.children]) if (!keep.has(c.dataset.series)) c.remove();
    for (const name of names) spark(box, name, history.series[name], history, opts(name));
    if (names.length === 0) box.replaceChildren(el('p', { class: 'empty', text: empty }));
  };
  const nonZero = (name) => (history.series[name].v.at(-1) ?? 0) > 0;
  draw('ns-sparks', groups.ns.filter((n) => !n.endsWith(':refused') || nonZero(n)), (n) => ({ alert: n.endsWith(':refused') }), 'no points yet');
  draw('backend-sparks', groups.backend.filter((n) => !/:(failed|dropped)$/.test(n) || nonZero(n)), (n) => ({ alert: /:(failed|dropped)$/.test(n) }));
  const noSpool = status.publish?.mode === 'in-process' ? 'no spool: points go to the sender in-process' : 'no spool in this role';
  draw('spool-sparks', groups.spool, () => ({}), noSpool);
  draw('drop-sparks', groups.drop.filter(nonZero), (n) => ({ alert: growth(history.series[n].v) > 0 }), 'nothing dropped or refused since start');
}

// ---- plugins --------------------------------------------------------------------------------

const repoOf = (p) => p.repo ?? p.builtin ?? p.name;
const keyOf = (p) => `${p.namespace}\n${repoOf(p)}`;

async function pluginOp(op, p, button) {
  const params = new URLSearchParams({ ns: p.namespace, repo: repoOf(p) });
  button.disabled = true;
  notice(`${op} ${p.namespace}/${p.name}…`);
  try {
    const data = await api(`/plugins/${op}?${params}`, { method: 'POST' });
    if (op === 'run') {
      notice(`ran ${p.namespace}/${p.name}: ${data.success ? 'ok' : `failed: ${data.error}`}, ${data.metricCount ?? 0} points in ${data.durationMs} ms`, !data.success);
    } else {
      notice(data.message ?? `${op}: done`);
    }
  } catch (err) {
    if (err.status === 401) needToken(`${op} of a plugin`);
    else notice(`${op} ${p.namespace}/${p.name} failed: ${err.message}`, true);
  } finally {
    button.disabled = false;
    void refresh();
  }
}

function renderPlugins(plugins) {
  $('plugins').hidden = false;
  const rows = [];
  for (const p of plugins) {
    const last = p.lastRun;
    const lastText = last
      ? `${ago(last.startedAt)} · ${last.success ? 'ok' : 'failed'} · exit ${last.exitCode ?? '–'}${last.timedOut ? ' (timed out)' : ''} · ${last.durationMs} ms${last.error ? ` · ${last.error}` : ''}`
      : 'never';
    const next = !p.enabled ? 'disabled' : p.nextRunAt ? ago(p.nextRunAt) : '–';
    const key = keyOf(p);
    const stderrBtn = el('button', {
      type: 'button',
      class: 'stderr',
      disabled: !last?.stderrTail,
      text: 'stderr',
      onclick: () => {
        if (state.stderrOpen.has(key)) state.stderrOpen.delete(key);
        else state.stderrOpen.add(key);
        renderPlugins(plugins);
      },
    });
    const act = (op) => el('button', { type: 'button', class: `op-${op}`, text: op, onclick: (e) => void pluginOp(op, p, e.currentTarget) });
    rows.push(
      el(
        'tr',
        { 'data-ns': p.namespace, 'data-plugin': p.name, 'data-enabled': String(p.enabled) },
        el('td', { text: p.namespace }),
        el('td', { title: repoOf(p), text: p.name }, p.problem ? el('div', { class: 'err', text: p.problem }) : null),
        el('td', { text: p.cron ? `${p.cron}${p.timezone ? ` (${p.timezone})` : ''}` : p.interval ? `${p.interval} s` : 'on demand' }),
        el('td', { class: p.enabled ? 'ok enabled' : 'err enabled', text: p.enabled ? 'yes' : p.disabledUntil ? `no, until ${new Date(p.disabledUntil).toLocaleTimeString()}` : 'no' }),
        el('td', { text: p.running ? 'running now' : next }),
        el('td', { class: last && !last.success ? 'err' : '', text: lastText }),
        el('td', { class: 'actions' }, act('run'), act('update'), p.enabled ? act('disable') : act('enable'), stderrBtn),
      ),
    );
    if (state.stderrOpen.has(key) && last?.stderrTail) {
      rows.push(el('tr', { class: 'stderr-row' }, el('td', { colspan: 7 }, el('pre', { text: last.stderrTail }))));
    }
  }
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'empty', text: 'no plugins for this host' })));
  $('plugin-table').tBodies[0].replaceChildren(...rows);
}

// ---- logs -----------------------------------------------------------------------------------

const LEVELS = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const PLAIN_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'component', 'msg']);

function parseLine(raw) {
  try {
    const o = JSON.parse(raw);
    if (o && typeof o === 'object') return o;
  } catch {
    // Not pino's JSON (a pretty-printed or foreign line): shown as it is.
  }
  return { level: 30, msg: raw };
}

async function loadLog(older) {
  const lg = state.log;
  try {
    let end;
    if (older) {
      if (!lg.start) return;
      end = lg.start;
    } else {
      const probe = await api(`/log/offset?${new URLSearchParams({ fpath: 'current.log', offset: String(Number.MAX_SAFE_INTEGER), num: '0' })}`);
      end = probe.size;
      lg.lines = [];
    }
    const start = Math.max(0, end - LOG_WINDOW_BYTES);
    const chunk = await api(`/log/offset?${new URLSearchParams({ fpath: 'current.log', offset: String(start), num: String(LOG_MAX_LINES) })}`);
    let lines = chunk.lines;
    let first = start;
    // A window that starts mid-file starts mid-line: that piece belongs to the older page.
    if (start > 0 && lines.length > 0) {
      first += new TextEncoder().encode(lines[0]).length + 1;
      lines = lines.slice(1);
    }
    const inWindow = [];
    let pos = first;
    for (const l of lines) {
      if (pos >= end) break;
      inWindow.push(l);
      pos += new TextEncoder().encode(l).length + 1;
    }
    lg.start = first;
    lg.needsToken = false;
    lg.lines.push(...inWindow.reverse().map(parseLine));
    renderLog();
  } catch (err) {
    if (err.status === 401) {
      lg.needsToken = true;
      renderLog();
    } else {
      $('log-table').tBodies[0].replaceChildren(el('tr', {}, el('td', { class: 'err', text: `cannot read the log: ${err.message}` })));
    }
  }
}

function renderLog() {
  const lg = state.log;
  const body = $('log-table').tBodies[0];
  if (lg.needsToken) {
    body.replaceChildren(el('tr', {}, el('td', { class: 'empty', text: "reading the log needs the agent's http.token: type it in the token box, then press newest" })));
    return;
  }
  const minLevel = Number($('log-level').value);
  const component = $('log-component').value;
  for (const l of lg.lines) if (l.component) lg.components.add(l.component);
  const select = $('log-component');
  const known = new Set([...select.options].map((o) => o.value));
  for (const c of [...lg.components].sort()) if (!known.has(c)) select.append(el('option', { value: c, text: c }));
  const rows = [];
  for (const l of lg.lines) {
    if ((l.level ?? 30) < minLevel) continue;
    if (component && l.component !== component) continue;
    const extra = Object.entries(l)
      .filter(([k]) => !PLAIN_KEYS.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v, (key, x) => (key === 'stack' ? undefined : x))}`)
      .join(' ');
    rows.push(
      el(
        'tr',
        { class: `lvl-${l.level ?? 30}` },
        el('td', { title: String(l.time ?? ''), text: l.time ? String(l.time).replace(/^.*T/, '').replace(/\.\d+Z$/, 'Z') : '' }),
        el('td', { text: LEVELS[l.level] ?? String(l.level ?? '') }),
        el('td', { text: l.component ?? '' }),
        el('td', { text: `${l.msg ?? ''}${extra ? `  ${extra.slice(0, 400)}` : ''}` }),
      ),
    );
  }
  if (rows.length === 0) {
    const text = lg.start ? 'no lines at this level in the part read so far; press older to read further back' : 'no lines at this level in the current log';
    rows.push(el('tr', {}, el('td', { class: 'empty', text })));
  }
  body.replaceChildren(...rows);
  $('log-older').disabled = !lg.start;
}

// ---- main loop ------------------------------------------------------------------------------

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const status = await api('/me/status');
    // `agent relay` runs no plugins and serves no /plugins routes.
    const hasPlugins = status.role !== 'relay';
    const [history, plugins] = await Promise.all([api('/me/history').catch(() => null), hasPlugins ? api('/plugins/list') : null]);
    renderHealth(status, history, plugins);
    renderRegistry(status);
    if (history) renderSparks(history, status);
    if (plugins) renderPlugins(plugins);
    document.body.dataset.loaded = 'true';
  } catch (err) {
    $('health').className = 'badge bad';
    $('health').textContent = 'agent unreachable';
    notice(`cannot reach the agent: ${err.message}`, true);
  } finally {
    state.busy = false;
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (document.visibilityState !== 'visible') return;
  state.timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, POLL_MS);
}

function main() {
  $('token-form').addEventListener('submit', (e) => e.preventDefault());
  $('token').addEventListener('input', (e) => {
    state.token = e.target.value.trim();
  });
  $('token').addEventListener('change', () => {
    if (state.log.needsToken) void loadLog(false);
  });
  $('log-level').addEventListener('change', renderLog);
  $('log-component').addEventListener('change', renderLog);
  $('log-refresh').addEventListener('click', () => void loadLog(false));
  $('log-older').addEventListener('click', () => void loadLog(true));
  // Nobody looking, nothing asked: polling stops while the tab is hidden.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void refresh().then(schedule);
    else clearTimeout(state.timer);
  });
  void refresh().then(schedule);
  void loadLog(false);
}

main();
