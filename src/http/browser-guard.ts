// Refuses, on every route, what a web browser sends on behalf of another site: a foreign
// `Origin`, a `Sec-Fetch-Site` other than same-origin/none, and a `Host` that is not one of this
// agent's names (a DNS-rebinding page reaches a loopback port under its own name). Without it any
// page the operator opened could post points, run and disable plugins or read status through
// the loopback API. curl and scripts send neither Origin nor Sec-Fetch-Site, and name the agent
// in Host, so they pass as before.
import os from 'node:os';
import type { Middleware } from 'koa';
import { sendError } from './envelope.ts';
import { splitHostPort } from '../config/addresses.ts';

export type BrowserRefusal = 'foreign_origin' | 'cross_site' | 'foreign_host';

export interface BrowserGuardOptions {
  /** `http.listen`: its host is always an allowed name. */
  listen: string;
  /** The config's `hostname` (the host tag), when set. */
  hostname?: string;
  /** `http.allowedHosts`: more names (a leading "*." allows every subdomain). */
  allowedHosts: readonly string[];
  onRefused?: (reason: BrowserRefusal) => void;
  /** The OS's host name and interface addresses; injectable for tests. */
  osHostname?: () => string;
  interfaceAddresses?: () => string[];
  /** Milliseconds since the epoch; interface addresses are read again on a miss at most every 5 s. */
  now?: () => number;
}

const ALLOWED_FETCH_SITES = new Set(['same-origin', 'none']);
const REREAD_INTERFACES_MS = 5000;

export function browserGuard(opts: BrowserGuardOptions): Middleware {
  const names = new AllowedHosts(opts);
  return async (ctx, next) => {
    const refuse = (reason: BrowserRefusal, message: string) => {
      opts.onRefused?.(reason);
      sendError(ctx, 403, message);
    };
    const hostHeader = ctx.req.headers.host;
    if (hostHeader !== undefined) {
      const host = hostOfHeader(hostHeader);
      if (host === undefined || !names.has(host)) {
        return refuse(
          'foreign_host',
          `refused: the Host header ${quote(hostHeader)} is not a name of this agent (a guard against DNS rebinding); if you reach the agent by that name, add it to http.allowedHosts`,
        );
      }
    }
    const origin = ctx.req.headers.origin;
    if (origin !== undefined) {
      const host = hostOfOrigin(origin);
      if (host === undefined || !names.has(host)) {
        return refuse(
          'foreign_origin',
          `refused: this request was sent by a web page of another site (Origin ${quote(origin)}); the API answers scripts and curl, and pages served under one of the agent's own names (http.allowedHosts)`,
        );
      }
    }
    const site = ctx.req.headers['sec-fetch-site'];
    if (site !== undefined && !ALLOWED_FETCH_SITES.has(String(site).toLowerCase())) {
      return refuse(
        'cross_site',
        `refused: this request was sent by a browser for another site (Sec-Fetch-Site ${quote(String(site))}); the API answers scripts and curl, which send no Sec-Fetch-Site`,
      );
    }
    return next();
  };
}

/** The names this agent answers to, as a browser would put them in Host or Origin. */
export class AllowedHosts {
  private readonly fixed = new Set<string>();
  private readonly suffixes: string[] = [];
  private interfaces = new Set<string>();
  private interfacesReadAt = Number.NEGATIVE_INFINITY;
  private readonly readInterfaces: () => string[];
  private readonly now: () => number;

  constructor(opts: BrowserGuardOptions) {
    this.readInterfaces = opts.interfaceAddresses ?? osInterfaceAddresses;
    this.now = opts.now ?? Date.now;
    const add = (name: string | undefined) => {
      if (name === undefined || name === '') return;
      const n = normalise(name);
      if (n.startsWith('*.')) this.suffixes.push(n.slice(1));
      else this.fixed.add(n);
    };
    add(splitHostPort(opts.listen).host);
    add((opts.osHostname ?? os.hostname)());
    add(opts.hostname);
    for (const h of opts.allowedHosts) add(h);
    this.refreshInterfaces();
  }

  has(host: string): boolean {
    const h = normalise(host);
    if (h === '') return false;
    if (isLoopbackName(h)) return true;
    if (this.fixed.has(h) || this.interfaces.has(h)) return true;
    for (const s of this.suffixes) if (h.endsWith(s)) return true;
    // An address added since (DHCP, a new interface): look again, but not on every foreign request.
    if (this.now() - this.interfacesReadAt >= REREAD_INTERFACES_MS) {
      this.refreshInterfaces();
      return this.interfaces.has(h);
    }
    return false;
  }

  private refreshInterfaces(): void {
    this.interfacesReadAt = this.now();
    this.interfaces = new Set(this.readInterfaces().map(normalise));
  }
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** localhost (and *.localhost, which browsers never ask DNS for), 127.0.0.0/8 and ::1. */
function isLoopbackName(h: string): boolean {
  return h === 'localhost' || h.endsWith('.localhost') || LOOPBACK_V4.test(h) || h === '::1' || h === '::ffff:127.0.0.1';
}

function osInterfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

/** Lower case, without IPv6 brackets, an IPv6 zone or a trailing dot. */
function normalise(name: string): string {
  let n = name.trim().toLowerCase();
  if (n.startsWith('[') && n.endsWith(']')) n = n.slice(1, -1);
  const zone = n.indexOf('%');
  if (zone !== -1 && n.includes(':')) n = n.slice(0, zone);
  if (n.endsWith('.')) n = n.slice(0, -1);
  return n;
}

/** The host of a Host header ("name", "name:port", "[v6]:port"); undefined when malformed. */
export function hostOfHeader(header: string): string | undefined {
  const h = header.trim();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    if (close === -1) return undefined;
    const rest = h.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    return h.slice(1, close);
  }
  const colon = h.indexOf(':');
  if (colon === -1) return h;
  if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return undefined;
  return h.slice(0, colon);
}

function hostOfOrigin(origin: string): string | undefined {
  // "null" is what sandboxed frames, file: pages and cross-site redirects send: never ours.
  if (origin === 'null') return undefined;
  try {
    const url = new URL(origin);
    return url.hostname === '' ? undefined : url.hostname;
  } catch {
    return undefined;
  }
}

function quote(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}
