// The operator's files in deploy/monitoring, checked with the real tools. Offline: promtool accepts the
// rules (plain file and PrometheusRule, which hold the same groups) and runs a unit test of every
// alert at its threshold; the ServiceMonitor and the dashboard are cross-checked with the Service and
// the rules. Live: one instance with its own Redis is scraped by a real Prometheus, which must find
// every metric the rules and the dashboard name, evaluate every rule and panel query, and fire
// SwitchboardBrokerDown when Redis stops (SwitchboardInstanceDown when the instance dies). The panels,
// as that Prometheus answers them, are drawn to test-results/monitoring-dashboard.png: what the
// expressions return, laid out on the dashboard's grid by this file (it is not Grafana).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { requireBinary } from '../helpers/binaries.js';
import { startProcess } from '../helpers/processes.js';
import { call, closeAllClients, connect, type TestSocket } from '../helpers/client.js';
import { ROOT, startInstance, type Instance } from '../helpers/instance.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';
import { token } from '../helpers/tokens.js';

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Rule[];
}
interface Target {
  expr: string;
  legendFormat: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { type: string; uid: string };
  fieldConfig: { defaults: { unit: string; max?: number; mappings?: { options: Record<string, { text: string }> }[] } };
  targets: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  definition?: string;
  datasource?: { type: string; uid: string };
}
interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const MONITORING = join(ROOT, 'deploy/monitoring');
const ARTIFACTS = join(ROOT, 'test-results');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const groups = (parse(read('deploy/monitoring/alerts.yml')) as { groups: RuleGroup[] }).groups;
const rules = groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(read('deploy/monitoring/grafana-dashboard.json')) as Dashboard;
/** The scrape job the rules select (`up{job="switchboard"}`), as named by the ServiceMonitor. */
const JOB = 'switchboard';

/** Until scripts/lib/binaries.ts lists Debian's `prometheus` package, a check of its own. */
/** Runs promtool; a non-zero exit fails with everything it printed. */
function promtool(...args: string[]): string {
  try {
    return execFileSync(requireBinary('promtool'), args, { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

/** alerts.yml's groups with every rule passed through `change`, written as a rules file. */
function writeRules(path: string, change: (rule: Rule) => Rule): void {
  writeFileSync(path, stringify({ groups: groups.map((g) => ({ ...g, rules: g.rules.map(change) })) }));
}

interface Selector {
  name: string;
  matchers: string;
}

const NOT_METRICS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The vector selectors of a PromQL expression: metric name and `{…}` matchers. A tokeniser, not a
 * parser: grouping clauses (`by (…)`, `on (…)` …) and ranges are dropped, a name followed by `(` is a
 * function. Enough for the shipped expressions; a test below shows it on the constructs they use.
 */
function selectors(expr: string): Selector[] {
  const bare = expr.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  const found: Selector[] = [];
  for (const [whole, name, matchers, call] of bare.matchAll(/\{[^}]*\}|(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\{[^}]*\})?(\s*\()?/g)) {
    if (name === undefined || NOT_METRICS.has(name.toLowerCase())) {
      // A keyword is no name: `or {job="x"}` is a selector of its own, without one.
      if (name === undefined || matchers) found.push({ name: '', matchers: (matchers ?? whole).trim() });
    } else if (matchers || !call) found.push({ name, matchers: matchers?.trim() ?? '' });
  }
  return found;
}

const panelExprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
const variableMetrics = dashboard.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => /^label_values\((\w+),\s*instance\)$/.exec(v.definition ?? '')?.[1] ?? `unparsed variable ${v.name}`);
/** Every metric name the rules, the panels and the dashboard's variables use. */
const referenced = new Set([...rules.map((r) => r.expr), ...panelExprs].flatMap((e) => selectors(e).map((s) => s.name)).concat(variableMetrics));
/** Series Prometheus makes itself for every target; every other name must come from the instance. */
const SYNTHETIC = new Set(['up']);

describe('the PromQL selector tokeniser', () => {
  test('finds every metric of an expression with its matchers, and no function, keyword, label or duration', () => {
    const expr =
      'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{code="X", instance=~"$instance"}[$__rate_interval]))) > 0.5e1 ' +
      'and on (job) b offset 10m unless max without (x) (c:rule{x="y"}) * 2 or {job="j"}';
    expect(selectors(expr)).toEqual([
      { name: 'a_bucket', matchers: '{code="X", instance=~"$instance"}' },
      { name: 'b', matchers: '' },
      { name: 'c:rule', matchers: '{x="y"}' },
      { name: '', matchers: '{job="j"}' },
    ]);
  });
});

describe('deploy/monitoring, checked offline', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-rules-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('the PrometheusRule holds exactly the groups of alerts.yml', () => {
    const resource = parse(read('deploy/monitoring/prometheusrule.yaml')) as { apiVersion: string; kind: string; spec: { groups: RuleGroup[] } };
    expect(resource.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(resource.kind).toBe('PrometheusRule');
    expect(resource.spec.groups).toEqual(groups);
  });

  test('promtool check rules accepts alerts.yml and the PrometheusRule’s groups', () => {
    expect(promtool('check', 'rules', join(MONITORING, 'alerts.yml'))).toContain(`SUCCESS: ${rules.length} rules found`);
    const specOnly = join(dir, 'prometheusrule-groups.yml');
    writeFileSync(specOnly, stringify((parse(read('deploy/monitoring/prometheusrule.yaml')) as { spec: object }).spec));
    expect(promtool('check', 'rules', specOnly)).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  test('every alert is silent below its threshold (or before its `for:`) and fires above it (promtool test rules)', () => {
    expect(THRESHOLD_CASES.map((c) => c.alert).sort()).toEqual(rules.map((r) => r.alert).sort());
    // promtool compares annotations too; they are prose (docs/operations.md explains each alert), so
    // this copy leaves them out and the cases state labels only.
    writeRules(join(dir, 'rules.yml'), ({ annotations: _, ...rule }) => rule as Rule);
    writeFileSync(join(dir, 'thresholds.yml'), stringify(promtoolTests(THRESHOLD_CASES)));
    expect(promtool('test', 'rules', join(dir, 'thresholds.yml'))).toContain('SUCCESS');
  });

  test('every alert has a severity, a summary and a runbook section in docs/operations.md', () => {
    const headings = new Set([...read('docs/operations.md').matchAll(/^### (\S+)$/gm)].map((m) => m[1]));
    for (const rule of rules) {
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels['severity']);
      expect(rule.annotations['summary'], rule.alert).toBeTruthy();
      expect(headings.has(rule.alert), `### ${rule.alert} in docs/operations.md`).toBe(true);
      expect(rule.annotations['runbook_url'], rule.alert).toMatch(new RegExp(`/docs/operations\\.md#${rule.alert.toLowerCase()}$`));
    }
  });

  test('the ServiceMonitor scrapes /metrics on the Service’s http port, as the job the rules select', () => {
    const monitor = parse(read('deploy/monitoring/servicemonitor.yaml')) as {
      kind: string;
      spec: { jobLabel: string; selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
    };
    const service = parse(read('deploy/k8s/service.yaml')) as { metadata: { labels: Record<string, string> }; spec: { ports: { name: string }[] } };
    expect(monitor.kind).toBe('ServiceMonitor');
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(service.metadata.labels[monitor.spec.jobLabel]).toBe(JOB);
    for (const endpoint of monitor.spec.endpoints) {
      expect(service.spec.ports.map((p) => p.name)).toContain(endpoint.port);
      expect(endpoint.path).toBe('/metrics');
    }
    const jobs = rules.flatMap((r) => selectors(r.expr)).flatMap((s) => [...s.matchers.matchAll(/\bjob\s*=~?\s*"([^"]*)"/g)].map((m) => m[1]));
    expect(new Set(jobs)).toEqual(new Set([JOB]));
  });

  test('the dashboard: a Prometheus data-source variable and an instance variable that every query uses', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const [datasource, instance] = ['datasource', 'instance'].map((n) => dashboard.templating.list.find((v) => v.name === n));
    expect(datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(instance).toMatchObject({ type: 'query', definition: 'label_values(switchboard_build_info, instance)' });
    const uses = { type: 'prometheus', uid: '${datasource}' };
    expect(instance?.datasource).toEqual(uses);
    for (const panel of dashboard.panels) {
      expect(panel.datasource, panel.title).toEqual(uses);
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets) {
        expect(t.datasource, panel.title).toEqual(uses);
        for (const s of selectors(t.expr)) expect(s.matchers, `${s.name} in “${panel.title}”`).toContain('instance=~"$instance"');
      }
    }
  });

  test('the dashboard shows what the issue asks for, on a grid without overlaps', () => {
    const shown = (metric: string) => dashboard.panels.filter((p) => p.targets.some((t) => selectors(t.expr).some((s) => s.name === metric)));
    for (const metric of [
      'switchboard_connections',
      'switchboard_messages_received_total',
      'switchboard_messages_delivered_total',
      'switchboard_ack_duration_seconds_bucket',
      'switchboard_store_write_duration_seconds_bucket',
      'switchboard_event_errors_total',
      'switchboard_broker_up',
      'switchboard_slow_consumer_disconnects_total',
      'nodejs_eventloop_lag_p99_seconds',
      'switchboard_draining',
    ]) {
      expect(shown(metric).length, `a panel of ${metric}`).toBeGreaterThan(0);
    }
    expect(shown('switchboard_event_errors_total').some((p) => p.targets.some((t) => /sum by \(code\)/.test(t.expr))), 'errors by code').toBe(true);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    const cells = new Map<string, string>();
    for (const { title, gridPos: g } of dashboard.panels) {
      expect(g.x + g.w, title).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(cells.get(`${x},${y}`), `${title} overlaps`).toBeUndefined();
          cells.set(`${x},${y}`, title);
        }
      }
    }
  });
});

interface ThresholdCase {
  alert: string;
  /** Input series in promtool's notation, one sample a minute. */
  series: Record<string, string>;
  /** Times at which the alert must not fire: below its threshold, or not yet true for its `for:`. */
  silentAt: string[];
  firingAt: string;
  /** The labels of the one alert expected at `firingAt` (promtool adds alertname; severity is the rule's). */
  labels: Record<string, string>;
}

const at = (instance: string, more = '') => `{job="${JOB}",instance="${instance}"${more}}`;
/** The cumulative `_bucket` series of one histogram, by upper bound. */
const buckets = (name: string, labels: string, byLe: Record<string, string>) =>
  Object.fromEntries(Object.entries(byLe).map(([le, values]) => [`${name}_bucket${labels.slice(0, -1)},le="${le}"}`, values]));
const onlyB = { job: JOB, instance: 'b' };

// Instance `a` stays just below each threshold (or on another job), instance `b` goes over it.
const THRESHOLD_CASES: ThresholdCase[] = [
  {
    alert: 'SwitchboardInstanceDown',
    series: { [`up${at('a')}`]: '1x6', [`up${at('b')}`]: '1 1 0 0 0 0', 'up{job="other",instance="c"}': '0x6' },
    silentAt: ['3m'],
    firingAt: '4m',
    labels: onlyB,
  },
  {
    alert: 'SwitchboardBrokerDown',
    series: { [`switchboard_broker_up${at('a')}`]: '1x4', [`switchboard_broker_up${at('b')}`]: '1 0 0 0' },
    silentAt: ['1m'],
    firingAt: '2m',
    labels: onlyB,
  },
  {
    alert: 'SwitchboardStoreUnavailable',
    series: {
      [`switchboard_event_errors_total${at('a', ',event="send_message",code="FORBIDDEN"')}`]: '0+10x6',
      // Presence lives in Redis: SwitchboardBrokerDown covers it.
      [`switchboard_event_errors_total${at('a', ',event="presence",code="UNAVAILABLE"')}`]: '0+10x6',
      [`switchboard_event_errors_total${at('b', ',event="send_message",code="UNAVAILABLE"')}`]: '0 0 5 10 15 20 25',
    },
    silentAt: ['1m', '3m'],
    firingAt: '4m',
    labels: onlyB,
  },
  {
    alert: 'SwitchboardDrainStuck',
    series: { [`switchboard_draining${at('a')}`]: '0x5', [`switchboard_draining${at('b')}`]: '0 1 1 1 1 1' },
    silentAt: ['2m'],
    firingAt: '3m',
    labels: onlyB,
  },
  {
    alert: 'SwitchboardConnectionsDropped',
    series: {
      [`switchboard_connections${at('a')}`]: '60x10 10x10',
      [`switchboard_connections${at('b')}`]: '60x10 0x10',
      'switchboard_connections{job="small",instance="c"}': '50x10 0x10',
    },
    silentAt: ['10m', '12m'],
    firingAt: '13m',
    labels: { job: JOB },
  },
  {
    alert: 'SwitchboardAckLatencyHigh',
    series: {
      ...buckets('switchboard_ack_duration_seconds', at('a', ',event="send_message"'), { '0.25': '0x15', '0.5': '0+10x15', '1': '0+10x15', '+Inf': '0+10x15' }),
      ...buckets('switchboard_ack_duration_seconds', at('b', ',event="send_message"'), { '0.25': '0x15', '0.5': '0x15', '1': '0+10x15', '+Inf': '0+10x15' }),
    },
    silentAt: ['10m'],
    firingAt: '11m',
    labels: { ...onlyB, event: 'send_message' },
  },
  {
    alert: 'SwitchboardStoreWriteSlow',
    series: {
      ...buckets('switchboard_store_write_duration_seconds', at('a'), { '0.1': '0x15', '0.25': '0+10x15', '0.5': '0+10x15', '+Inf': '0+10x15' }),
      ...buckets('switchboard_store_write_duration_seconds', at('b'), { '0.1': '0x15', '0.25': '0x15', '0.5': '0+10x15', '+Inf': '0+10x15' }),
    },
    silentAt: ['10m'],
    firingAt: '11m',
    labels: onlyB,
  },
  {
    alert: 'SwitchboardInternalErrors',
    series: {
      [`switchboard_event_errors_total${at('a', ',event="send_message",code="INTERNAL"')}`]: '3x5',
      [`switchboard_event_errors_total${at('a', ',event="send_message",code="FORBIDDEN"')}`]: '0+10x5',
      [`switchboard_event_errors_total${at('b', ',event="send_message",code="INTERNAL"')}`]: '0 0 1 1 1 1',
    },
    silentAt: ['1m', '2m'],
    firingAt: '3m',
    labels: { ...onlyB, event: 'send_message' },
  },
  {
    alert: 'SwitchboardEventLoopLag',
    series: {
      [`nodejs_eventloop_lag_p99_seconds${at('a')}`]: '0.15x12',
      [`nodejs_eventloop_lag_p99_seconds${at('b')}`]: '0.3x12',
      'nodejs_eventloop_lag_p99_seconds{job="other",instance="c"}': '0.5x12',
    },
    silentAt: ['9m'],
    firingAt: '10m',
    labels: onlyB,
  },
  {
    alert: 'SwitchboardSlowConsumers',
    series: { [`switchboard_slow_consumer_disconnects_total${at('a')}`]: '0+0.5x20', [`switchboard_slow_consumer_disconnects_total${at('b')}`]: '0+2x20' },
    silentAt: ['3m'],
    firingAt: '15m',
    labels: onlyB,
  },
];

/** A promtool unit-test file (`promtool test rules`) for the cases, against `rules.yml` beside it. */
function promtoolTests(cases: ThresholdCase[]) {
  const severity = (alert: string) => rules.find((r) => r.alert === alert)?.labels['severity'];
  return {
    rule_files: ['rules.yml'],
    evaluation_interval: '1m',
    tests: cases.map((c) => ({
      name: c.alert,
      interval: '1m',
      input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
      alert_rule_test: [
        ...c.silentAt.map((t) => ({ eval_time: t, alertname: c.alert, exp_alerts: [] })),
        { eval_time: c.firingAt, alertname: c.alert, exp_alerts: [{ exp_labels: { ...c.labels, severity: severity(c.alert) } }] },
      ],
    })),
  };
}

interface InstantSeries {
  metric: Record<string, string>;
  value: [number, string];
}
interface RangeSeries {
  metric: Record<string, string>;
  values: [number, string][];
}
interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
}
interface RuleState {
  name: string;
  health: string;
  lastError?: string;
  lastEvaluation: string;
}

interface Prometheus {
  query(expr: string): Promise<InstantSeries[]>;
  range(expr: string, start: number, end: number): Promise<RangeSeries[]>;
  alerts(): Promise<Alert[]>;
  ruleStates(): Promise<RuleState[]>;
  targetHealth(): Promise<string[]>;
  stop(): Promise<void>;
}


/**
 * A Prometheus of our own on a free port, with its own storage in a temp dir, scraping `target` every
 * second and evaluating alerts.yml every second. stop() ends it and removes the dir.
 */
async function startPrometheus(target: string): Promise<Prometheus> {
  const bin = requireBinary('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'sb-prometheus-'));
  // The shipped `for:` (1 to 10 minutes) would make the test wait that long: this copy sets every
  // `for:` to 0s, so an alert fires at its first evaluation that finds the condition true.
  writeRules(join(dir, 'rules.yml'), (rule) => ({ ...rule, for: '0s' }));
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: ['rules.yml'],
    scrape_configs: [{ job_name: JOB, static_configs: [{ targets: [target] }] }],
  };
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const args = [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`];
  const proc = startProcess(bin, args, { name: 'prometheus', stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = async () => {
    await proc.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    await proc.waitUntil(async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok, 'prometheus to be ready', 20_000, 100);
  } catch (err) {
    await stop();
    throw err;
  }
  return { ...prometheusApi(url), stop };
}

function prometheusApi(url: string): Omit<Prometheus, 'stop'> {
  const api = async <T>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const res = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  };
  return {
    query: async (query) => (await api<{ result: InstantSeries[] }>('query', { query })).result,
    range: async (query, start, end) => (await api<{ result: RangeSeries[] }>('query_range', { query, start: String(start), end: String(end), step: '1' })).result,
    alerts: async () => (await api<{ alerts: Alert[] }>('alerts')).alerts,
    ruleStates: async () => (await api<{ groups: { rules: RuleState[] }[] }>('rules', { type: 'alert' })).groups.flatMap((g) => g.rules),
    targetHealth: async () => (await api<{ activeTargets: { health: string }[] }>('targets')).activeTargets.map((t) => t.health),
  };
}

/** A panel's expression as Grafana sends it with "All" instances selected. */
const asQuery = (expr: string) => expr.replaceAll('$__rate_interval', '10s').replaceAll('$instance', '.*');

interface Traffic {
  stop(): void;
}

async function member(url: string, name: string): Promise<TestSocket> {
  const socket = await connect(url, await token(name));
  const joined = await call(socket, 'join_channel', 'general');
  if (!joined.ok) throw new Error(`${name} could not join: ${JSON.stringify(joined)}`);
  return socket;
}

/**
 * Chat traffic that makes every labelled series appear and keeps the panels moving: sends, retries
 * (duplicates), sends to a channel not joined (FORBIDDEN), presence, and a refused handshake and a
 * short-lived member now and then. One round at once, then one every 200 ms.
 */
async function startTraffic(url: string): Promise<Traffic> {
  const users: TestSocket[] = [];
  for (const name of ['ann', 'bob', 'cyd']) users.push(await member(url, name));
  let round = 0;
  const tick = async () => {
    const socket = users[round % users.length]!;
    const message = { channelId: 'general', content: `hello ${round}`, clientMessageId: `m${round}` };
    await call(socket, 'send_message', message);
    if (round % 5 === 0) await call(socket, 'send_message', message);
    if (round % 3 === 0) await call(socket, 'send_message', { ...message, channelId: 'random' });
    if (round % 10 === 0) {
      await connect(url, undefined).catch(() => 'refused, as meant: no token');
      (await member(url, `guest${round}`)).close();
    }
    await call(socket, 'presence', { channelId: 'general' });
    round++;
  };
  // Round 0 does everything once, so every series exists before the first scrape.
  await tick();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    tick()
      .catch(() => 'a call may time out while Redis is down')
      .finally(() => (busy = false));
  }, 200);
  return { stop: () => clearInterval(timer) };
}

/** The metric names a /metrics page has samples of. */
async function exportedNames(url: string): Promise<Set<string>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return new Set([...text.matchAll(/^([A-Za-z_:][\w:]*)(?:\{| )/gm)].map((m) => m[1]!));
}

describe('a live instance scraped by a real Prometheus', { timeout: 90_000 }, () => {
  let redis: PrivateRedis | undefined;
  let instance: Instance | undefined;
  let prometheus: Prometheus | undefined;
  let traffic: Traffic | undefined;
  let since = 0;
  // Each wait is bounded below the test's own timeout, so a failure names what did not happen.
  const WAIT = 20_000;
  const live = () => ({ redis: redis!, instance: instance!, prometheus: prometheus! });
  const active = async (alertname: string) => (await live().prometheus.alerts()).filter((a) => a.labels['alertname'] === alertname);

  beforeAll(async () => {
    redis = await startRedis();
    instance = await startInstance({ env: { REDIS_URL: redis.url, LOG_LEVEL: 'warn' } });
    traffic = await startTraffic(instance.url);
    since = Math.floor(Date.now() / 1000);
    prometheus = await startPrometheus(`127.0.0.1:${instance.port}`);
  });
  afterAll(async () => {
    traffic?.stop();
    closeAllClients();
    await prometheus?.stop();
    await instance?.kill();
    await redis?.stop();
  });

  test('the instance exports every metric the rules and the dashboard reference', async () => {
    const exported = await exportedNames(live().instance.url);
    const missing = [...referenced].filter((name) => !SYNTHETIC.has(name) && !exported.has(name));
    expect(missing).toEqual([]);
  });

  test('Prometheus scrapes it, evaluates every rule without error, and every panel query returns series', async () => {
    const { prometheus } = live();
    await waitFor(async () => (await prometheus.targetHealth()).join() === 'up', 'the instance to be scraped', WAIT);
    expect(await prometheus.query(`up{job="${JOB}"} == 1`)).toHaveLength(1);
    const empty = async () => {
      const answers = await Promise.all(panelExprs.map(async (e) => ((await prometheus.query(asQuery(e))).length ? '' : e)));
      return answers.filter(Boolean);
    };
    // Rates need two scrapes of a series in their window: wait for them, then demand data from all.
    await waitFor(async () => (await empty()).length === 0, 'every panel query to return series', WAIT, 500).catch(() => undefined);
    expect(await empty()).toEqual([]);
    // An evaluation error shows only with data (an empty vector matches nothing): judge evaluations from now on.
    const withData = Date.now();
    const states = await waitFor(async () => {
      const s = await prometheus.ruleStates();
      return s.length === rules.length && s.every((r) => Date.parse(r.lastEvaluation) > withData) ? s : undefined;
    }, 'every rule to be evaluated on the data', WAIT);
    expect(states.filter((r) => r.health !== 'ok' || r.lastError)).toEqual([]);
  });

  test('SwitchboardBrokerDown fires when Redis stops, and resolves when Redis is back', async () => {
    const { redis, instance, prometheus } = live();
    expect(await active('SwitchboardBrokerDown')).toEqual([]);
    await redis.kill();
    const firing = await waitFor(async () => (await active('SwitchboardBrokerDown')).find((a) => a.state === 'firing'), 'SwitchboardBrokerDown to fire', WAIT, 250);
    const target = `127.0.0.1:${instance.port}`;
    expect(firing.labels).toMatchObject({ instance: target, job: JOB, severity: 'critical' });
    expect(firing.annotations['summary']).toBe(`Switchboard instance ${target} has lost Redis`);
    // Redis stays away for a few more scrapes, so that the outage is plain on the dashboard picture.
    const downSamples = 'count_over_time(switchboard_broker_up[1m]) - sum_over_time(switchboard_broker_up[1m]) >= 5';
    await waitFor(async () => (await prometheus.query(downSamples)).length > 0, 'five scrapes with the broker down', WAIT, 250);
    await redis.start();
    await waitFor(async () => (await active('SwitchboardBrokerDown')).length === 0, 'SwitchboardBrokerDown to resolve', WAIT, 250);
  });

  test('the dashboard’s panels, drawn from Prometheus’s answers, show the outage (test-results/monitoring-dashboard.png)', async () => {
    const { prometheus } = live();
    await waitFor(async () => (await prometheus.query('min_over_time(switchboard_broker_up[5s]) == 1')).length > 0, 'five seconds of the broker up again', WAIT);
    const drawn = await drawDashboard(prometheus, since, Math.ceil(Date.now() / 1000));
    const empty = drawn.filter((p) => p.series.length === 0).map((p) => p.panel.title);
    expect(empty).toEqual([]);
    const broker = drawn.find((p) => p.panel.title === 'Broker up')!.series.flatMap((s) => s.points.map(([, v]) => v));
    expect(new Set(broker)).toEqual(new Set([0, 1]));
    const png = await screenshot(page(drawn), join(ARTIFACTS, 'monitoring-dashboard.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
  });

  test('SwitchboardInstanceDown fires when the instance dies', async () => {
    const { instance } = live();
    expect(await active('SwitchboardInstanceDown')).toEqual([]);
    await instance.kill();
    const firing = await waitFor(async () => (await active('SwitchboardInstanceDown')).find((a) => a.state === 'firing'), 'SwitchboardInstanceDown to fire', WAIT, 250);
    expect(firing.labels).toMatchObject({ instance: `127.0.0.1:${instance.port}`, job: JOB, severity: 'critical' });
  });
});

interface Drawn {
  panel: Panel;
  series: { label: string; points: [number, number][] }[];
}

async function drawDashboard(prometheus: Prometheus, start: number, end: number): Promise<Drawn[]> {
  const legend = (format: string, metric: Record<string, string>) => format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, l: string) => metric[l] ?? '');
  return Promise.all(
    dashboard.panels.map(async (panel) => {
      const perTarget = await Promise.all(panel.targets.map(async (t) => ({ t, result: await prometheus.range(asQuery(t.expr), start, end) })));
      const series = perTarget.flatMap(({ t, result }) =>
        result.map((s) => ({ label: legend(t.legendFormat, s.metric), points: s.values.map(([ts, v]): [number, number] => [ts, Number(v)]) })),
      );
      return { panel, series };
    }),
  );
}

const COLOURS = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#b877d9', '#5794f2', '#fade2a'];

function format(value: number, panel: Panel): string {
  const mapped = panel.fieldConfig.defaults.mappings?.[0]?.options[String(value)]?.text;
  if (mapped) return mapped;
  if (!Number.isFinite(value)) return '–';
  const n = (v: number) => (v >= 100 ? v.toFixed(0) : String(Number(v.toFixed(2))));
  switch (panel.fieldConfig.defaults.unit) {
    case 's':
      return value < 1 ? `${n(value * 1000)} ms` : `${n(value)} s`;
    case 'ops':
      return `${n(value)}/s`;
    case 'bytes':
      return `${n(value / 2 ** 20)} MiB`;
    case 'percentunit':
      return `${n(value * 100)}%`;
    default:
      return n(value);
  }
}

/** One panel's lines as SVG; a NaN (a quantile with nothing observed in its window) breaks a line. */
function chart(drawn: Drawn, span: [number, number], top: number): string {
  const [w, h] = [600, 200];
  const x = (t: number) => (((t - span[0]) / Math.max(1, span[1] - span[0])) * w).toFixed(1);
  const y = (v: number) => (h - (v / top) * h).toFixed(1);
  const lines = drawn.series.flatMap((s, i) => {
    const runs: [number, number][][] = [[]];
    for (const p of s.points) {
      if (Number.isFinite(p[1])) runs.at(-1)!.push(p);
      else if (runs.at(-1)!.length) runs.push([]);
    }
    const colour = COLOURS[i % COLOURS.length];
    // A run of one point is drawn as a short dash.
    const coordinates = (run: [number, number][]): [number, number][] => (run.length === 1 ? [run[0]!, [run[0]![0] + 0.5, run[0]![1]]] : run);
    return runs.map(
      (run) =>
        `<polyline fill="none" stroke="${colour}" stroke-width="2" vector-effect="non-scaling-stroke" points="${coordinates(run)
          .map(([t, v]) => `${x(t)},${y(v)}`)
          .join(' ')}"/>`,
    );
  });
  const grid = [0.25, 0.5, 0.75].map((f) => `<line x1="0" x2="${w}" y1="${h * f}" y2="${h * f}" stroke="#2c3235" vector-effect="non-scaling-stroke"/>`);
  return `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${grid.join('')}${lines.join('')}</svg>`;
}

function panelHtml(drawn: Drawn, span: [number, number]): string {
  const { panel, series } = drawn;
  const values = series.flatMap((s) => s.points.map(([, v]) => v)).filter(Number.isFinite);
  const top = panel.fieldConfig.defaults.max ?? (Math.max(0, ...values) * 1.1 || 1);
  const legend = series.map((s, i) => {
    const last = s.points.at(-1)?.[1] ?? NaN;
    return `<li><i style="background:${COLOURS[i % COLOURS.length]}"></i>${escape(s.label)} <b>${escape(format(last, panel))}</b></li>`;
  });
  const { x, y, w, h } = panel.gridPos;
  return `<section style="grid-column:${x + 1}/span ${w};grid-row:${y + 1}/span ${h}">
    <h2>${escape(panel.title)}</h2><div class="plot">${chart(drawn, span, top)}<span>${escape(format(top, panel))}</span></div>
    <div class="axis"><span>${when(span[0])}</span><span>${when(span[1])}</span></div>
    <ul>${legend.join('')}</ul></section>`;
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const when = (t: number) => new Date(t * 1000).toISOString().slice(11, 19);

function page(drawn: Drawn[]): string {
  const times = drawn.flatMap((d) => d.series.flatMap((s) => s.points.map(([t]) => t)));
  const span: [number, number] = [Math.min(...times), Math.max(...times)];
  return `<!doctype html><meta charset="utf-8"><style>
    body{margin:0;padding:16px;background:#111217;color:#ccccdc;font:13px system-ui,sans-serif}
    header{margin-bottom:12px}header b{font-size:18px;color:#fff}
    main{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:30px;gap:8px}
    section{background:#181b1f;border:1px solid #2c3235;border-radius:2px;padding:6px 8px;display:flex;flex-direction:column;min-height:0}
    h2{margin:0 0 4px;font-size:13px;color:#fff}.plot{flex:1;position:relative;min-height:0}
    .plot svg{width:100%;height:100%}.plot span{position:absolute;top:0;left:2px;font-size:11px;color:#8e8e8e}
    .axis{display:flex;justify-content:space-between;font-size:10px;color:#8e8e8e}
    ul{list-style:none;margin:4px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:2px 12px;font-size:11px}
    li i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
  </style><header><b>Switchboard</b> · deploy/monitoring/grafana-dashboard.json, every panel's queries as a real Prometheus
    answered them (${when(span[0])}–${when(span[1])} UTC, instance = All); drawn by test/e2e/monitoring.test.ts, not by Grafana.
    Redis was stopped and started again in this window.</header>
    <main>${drawn.map((d) => panelHtml(d, span)).join('')}</main>`;
}

async function screenshot(html: string, path: string): Promise<Buffer> {
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(path.replace(/\.png$/, '.html'), html);
  const browser = await chromium.launch({ executablePath: requireBinary('chromium'), headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const tab = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    await tab.setContent(html);
    return await tab.screenshot({ path, fullPage: true });
  } finally {
    await browser.close();
  }
}
