import { readFileSync } from 'node:fs';
import { rssOf } from '../../test/helpers/processes.js';

const TICKS = 100; // USER_HZ on Linux

/** CPU time (ms) and RSS (bytes) of a process from /proc; undefined when it is gone. */
export function procSample(pid: number): { cpuMs: number; sysMs: number; rss: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS;
    const sysMs = (Number(fields[12]) * 1000) / TICKS;
    return { cpuMs, sysMs, rss: rssOf(pid) };
  } catch {
    return undefined;
  }
}

export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}
