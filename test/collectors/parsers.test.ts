// The collectors' pure parsers on string literals: /proc formats, edge cases (names with
// spaces and parentheses, octal escapes, missing fields, counters going backwards).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuUsage, parseProcStatCpus } from '../../src/collectors/cpu.ts';
import { diskFields, parseMounts, selectMounts } from '../../src/collectors/disk.ts';
import { diskDerived, parseDiskstats } from '../../src/collectors/diskio.ts';
import { memFields, parseMeminfo } from '../../src/collectors/mem.ts';
import { parseNetDev, parseNetSnmp, parseSpeed, reportedByDefault } from '../../src/collectors/net.ts';
import { listeningPort, parseListeningPorts } from '../../src/collectors/port-check.ts';
import { processMatches } from '../../src/collectors/process-check.ts';
import { parseCmdline, parsePidStat } from '../../src/collectors/proc-table.ts';
import { processCounts } from '../../src/collectors/processes.ts';
import { parseVmstat, swapFields, swapTrafficFields } from '../../src/collectors/swap.ts';
import { countCpus, formatUptime, parseLoadavg, parseUptime, physicalFromCpuinfo } from '../../src/collectors/system.ts';
import { compileFilter, globProblem } from '../../src/collectors/filter.ts';

describe('cpu', () => {
  const t1 = 'cpu  100 10 50 800 20 5 5 10 30 2\ncpu0 100 10 50 800 20 5 5 10 30 2\nintr 1 2\n';
  const t2 = 'cpu  160 12 70 900 30 5 10 13 50 3\ncpu0 160 12 70 900 30 5 10 13 50 3\n';

  test('parses the aggregate as cpu-total and numbered CPUs by name', () => {
    const cpus = parseProcStatCpus(t1);
    assert.deepEqual(cpus.map((c) => c.cpu), ['cpu-total', 'cpu0']);
    assert.equal(cpus[0]!.guest, 30);
    assert.equal(cpus[0]!.guestNice, 2);
  });

  test("computes Telegraf's usage percentages (guest time taken out of user and nice)", () => {
    const [a] = parseProcStatCpus(t1);
    const [b] = parseProcStatCpus(t2);
    const u = cpuUsage(a!, b!)!;
    // Deltas: user 60, nice 2, system 20, idle 100, iowait 10, irq 0, softirq 5, steal 3 = 200.
    assert.equal(u.usage_user, (100 * (60 - 20)) / 200);
    assert.equal(u.usage_nice, (100 * (2 - 1)) / 200);
    assert.equal(u.usage_guest, (100 * 20) / 200);
    assert.equal(u.usage_guest_nice, (100 * 1) / 200);
    assert.equal(u.usage_idle, 50);
  });

  test('no usage when no time passed or counters went backwards', () => {
    const [a] = parseProcStatCpus(t1);
    assert.equal(cpuUsage(a!, a!), null);
    const [b] = parseProcStatCpus(t2);
    assert.equal(cpuUsage(b!, a!), null);
  });

  test('old kernels with fewer columns read the missing ones as 0', () => {
    const [c] = parseProcStatCpus('cpu 1 2 3 4\n');
    assert.equal(c!.idle, 4);
    assert.equal(c!.steal, 0);
  });
});

describe('mem and swap', () => {
  test('meminfo: kB become bytes, page counts stay counts', () => {
    const m = parseMeminfo('MemTotal:       1000 kB\nHugePages_Total:       4\nbroken line\n');
    assert.equal(m.get('MemTotal'), 1_024_000);
    assert.equal(m.get('HugePages_Total'), 4);
    assert.equal(m.size, 2);
  });

  test('used is total - available (gopsutil v4, Telegraf)', () => {
    const f = memFields(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nBuffers: 50 kB\nCached: 200 kB\nSReclaimable: 50 kB\n'));
    assert.equal(f.used, 400 * 1024);
    assert.equal(f.used_percent, 40);
    assert.equal(f.available_percent, 60);
    assert.equal(f.cached, 250 * 1024, 'cached includes SReclaimable');
  });

  test('without MemAvailable (kernel < 3.14) available is free + cached, as gopsutil estimates it', () => {
    const f = memFields(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\nSReclaimable: 50 kB\n'));
    assert.equal(f.available, (100 + 250) * 1024);
    assert.equal(f.used, (1000 - 100 - 250) * 1024);
    assert.equal(f.used_percent, 65);
  });

  test('swap: used and percent; in/out in bytes from pages; no swap = 0 %', () => {
    const f = swapFields(parseMeminfo('SwapTotal: 1000 kB\nSwapFree: 750 kB\n'));
    assert.deepEqual(f, { total: 1_024_000, used: 256_000, free: 768_000, used_percent: 25 });
    assert.deepEqual(swapTrafficFields(parseVmstat('pswpin 3\npswpout 5\n')), { in: 3 * 4096, out: 5 * 4096 });
    assert.equal(swapFields(new Map()).used_percent, 0);
  });
});

describe('system', () => {
  test('loadavg, uptime and the CPU count', () => {
    assert.deepEqual(parseLoadavg('0.10 0.20 0.30 1/100 42\n'), { load1: 0.1, load5: 0.2, load15: 0.3 });
    assert.equal(parseLoadavg('garbage'), null);
    assert.equal(parseUptime('12345.67 999.00\n'), 12346, 'sysinfo(2) rounds a started second up');
    assert.equal(countCpus('cpu  1 2 3\ncpu0 1\ncpu1 1\ncpu12 1\nintr 5\n'), 3);
  });

  test("uptime_format as Telegraf writes it", () => {
    assert.equal(formatUptime(2374), ' 0:39');
    assert.equal(formatUptime(86_400 + 3600 * 4 + 5 * 60 + 59), '1 day,  4:05');
    assert.equal(formatUptime(3 * 86_400 + 3600 * 23 + 60 * 7), '3 days, 23:07');
  });

  test('physical cores from /proc/cpuinfo: cpu cores summed per physical id', () => {
    const cpu = (id: number, phys: number) => `processor\t: ${id}\nphysical id\t: ${phys}\ncpu cores\t: 2\n`;
    assert.equal(physicalFromCpuinfo([cpu(0, 0), cpu(1, 0), cpu(2, 1), cpu(3, 1)].join('\n')), 4);
    assert.equal(physicalFromCpuinfo('processor : 0\n'), 0);
  });
});

describe('name filters (Telegraf globs)', () => {
  test('exact names, *, ?, sets and alternatives', () => {
    const f = compileFilter(['eth0', 'en*', 'sd?', 'nvme[0-1]n1', 'bond{0,9}']);
    for (const yes of ['eth0', 'ens5', 'sda', 'nvme1n1', 'bond9']) assert.ok(f.match(yes), yes);
    for (const no of ['eth01', 'sda1', 'nvme2n1', 'bond1', 'xeth0']) assert.ok(!f.match(no), no);
    assert.ok(compileFilter(['dm.[!0]']).match('dm.1') && !compileFilter(['dm.[!0]']).match('dm.0'));
    assert.match(globProblem('sd[a') ?? '', /never closed/);
    assert.equal(globProblem('sd[ab]*'), undefined);
  });
});

describe('disk', () => {
  test('mount lines with octal escapes, dedupe keeps the visible (last) mount', () => {
    const mounts = parseMounts('/dev/a /mnt/with\\040space ext4 rw 0 0\n/dev/b /data xfs ro,noatime 0 0\n/dev/c /data ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n');
    assert.equal(mounts[0]!.mountPoint, '/mnt/with space');
    const chosen = selectMounts(mounts, new Set(['tmpfs']));
    assert.deepEqual(chosen.map((m) => `${m.device}:${m.mountPoint}`), ['/dev/a:/mnt/with space', '/dev/c:/data']);
  });

  test('usage as gopsutil computes it; pseudo file systems (0 blocks) give nothing', () => {
    const f = diskFields({ bsize: 1000, blocks: 100, bfree: 30, bavail: 20, files: 10, ffree: 4 })!;
    assert.deepEqual(f, {
      total: 100_000,
      free: 20_000,
      used: 70_000,
      used_percent: (100 * 70) / 90,
      inodes_total: 10,
      inodes_free: 4,
      inodes_used: 6,
      inodes_used_percent: 60,
    });
    assert.equal(diskFields({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 }), null);
  });
});

describe('diskio and net', () => {
  test('diskstats: sectors of 512 bytes; short lines ignored', () => {
    const [d, ...rest] = parseDiskstats('   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n   8 0 short 1 2\n');
    assert.equal(rest.length, 0);
    assert.equal(d!.name, 'sda');
    assert.equal(d!.fields.read_bytes, 3 * 512);
    assert.equal(d!.fields.write_bytes, 7 * 512);
    assert.equal(d!.fields.io_time, 10);
    assert.equal(d!.fields.weighted_io_time, 11);
    assert.equal(d!.fields.iops_in_progress, 9);
  });

  test('net/dev: interface names with no space after the colon; loopback and down left out', () => {
    const [a, b] = parseNetDev('Inter-|\n face |\n  eth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nveth1234567890ab: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n');
    assert.equal(a!.iface, 'eth0');
    assert.deepEqual(a!.fields, { bytes_recv: 1, packets_recv: 2, err_in: 3, drop_in: 4, bytes_sent: 9, packets_sent: 10, err_out: 11, drop_out: 12 });
    assert.equal(b!.iface, 'veth1234567890ab');
    assert.equal(reportedByDefault(0x1003), true);
    assert.equal(reportedByDefault(0x9), false, 'loopback');
    assert.equal(reportedByDefault(0x1002), false, 'down');
  });

  test('speed: the file\'s integer in Mbit/s, -1 when unknown', () => {
    assert.equal(parseSpeed('10000\n'), 10000);
    assert.equal(parseSpeed('-1\n'), -1);
    assert.equal(parseSpeed(null), -1);
    assert.equal(parseSpeed('garbage'), -1);
  });

  test('snmp: protocol_counter in lower case, integers', () => {
    const f = parseNetSnmp('Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 3000\nTcp: RtoAlgorithm ActiveOpens\nTcp: 1 77\nUdpLite: InDatagrams\nUdpLite: 0\n');
    assert.deepEqual(f, { ip_forwarding: 1, ip_defaultttl: 64, ip_inreceives: 3000, tcp_rtoalgorithm: 1, tcp_activeopens: 77, udplite_indatagrams: 0 });
  });

  test('diskio derived fields between two readings; none after a wrap', () => {
    const [a] = parseDiskstats('   8       0 sda 100 0 0 50 100 0 0 150 0 400 0\n');
    const [b] = parseDiskstats('   8       0 sda 110 0 0 60 130 0 0 190 0 600 0\n');
    assert.deepEqual(diskDerived(a!.fields, b!.fields, 1000), { io_await: 50 / 40, io_svctm: 200 / 40, io_util: 20 });
    assert.deepEqual(diskDerived(a!.fields, a!.fields, 1000), { io_util: 0 }, 'no I/O: no await or svctm');
    assert.deepEqual(diskDerived(b!.fields, a!.fields, 1000), {});
  });
});

describe('processes', () => {
  test('stat with spaces and parentheses in the name', () => {
    const p = parsePidStat('1000 (my (odd) name) D 1 1000 1000 0 -1 4194560 100 0 0 0 10 20 0 0 20 0 7 0 9000 10000000 500 1 2 3')!;
    assert.equal(p.pid, 1000);
    assert.equal(p.comm, 'my (odd) name');
    assert.equal(p.state, 'D');
    assert.equal(p.ppid, 1);
    assert.equal(p.numThreads, 7);
    assert.equal(p.startTime, 9000);
    assert.equal(parsePidStat('garbage'), null);
  });

  test('cmdline: NULs become spaces, trailing ones dropped', () => {
    assert.equal(parseCmdline('/usr/bin/java\0-jar\0app.jar\0'), '/usr/bin/java -jar app.jar');
    assert.equal(parseCmdline(''), '');
  });

  test("counts by state as Telegraf's processes input does", () => {
    const f = processCounts(['R', 'S', 'S', 'D', 'Z', 'T', 't', 'I', 'X', 'W', 'P', '?'].map((state) => ({ state, numThreads: 2 })));
    assert.deepEqual(f, {
      blocked: 1,
      zombies: 1,
      stopped: 2,
      running: 1,
      sleeping: 2,
      dead: 1,
      paging: 1,
      idle: 1,
      parked: 1, // only present when a process is parked
      unknown: 1,
      total: 12,
      total_threads: 24,
    });
    assert.equal('parked' in processCounts([{ state: 'S', numThreads: 1 }]), false, 'no parked field without a parked process');
  });

  test('matching: exact comm (compared on its 15 kept characters) or a command-line substring', () => {
    const p = { pid: 1, comm: 'php-fpm: pool w', state: 'S', ppid: 0, numThreads: 1, startTime: 1, cmdline: 'php-fpm: pool www' };
    assert.equal(processMatches(p, { name: 'php-fpm: pool www' }), true);
    assert.equal(processMatches(p, { name: 'php-fpm' }), false);
    assert.equal(processMatches(p, { cmdline: 'pool www' }), true);
    assert.equal(processMatches({ ...p, cmdline: '' }, { cmdline: '' }), false, 'kernel threads have no command line');
  });
});

describe('socket tables', () => {
  test('LISTEN lines of tcp and tcp6 give their local port; other states and headers nothing', () => {
    assert.equal(listeningPort('   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1'), 8080);
    assert.equal(listeningPort('   1: 00000000000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 0'), 443);
    assert.equal(listeningPort('   2: 0100007F:1F90 0100007F:C000 01 00000000:00000000'), null);
    assert.equal(listeningPort('  sl  local_address rem_address   st tx_queue'), null);
    assert.deepEqual([...parseListeningPorts('a\n 0: 00000000:0016 00000000:0000 0A x\n 1: 00000000:0016 00000000:0000 0A y\n')], [22]);
  });
});
