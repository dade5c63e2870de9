/**
 * The deploy/ files, checked without Docker or a Kubernetes cluster: parsed, cross-referenced with
 * each other and with the server's own rules (config validation, `npm start`), and the balancer
 * configs run through `nginx -t` and `haproxy -c` as rendered for real upstreams.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { checkHaproxyCfg, checkNginxConf, REPO_ROOT } from '../../scripts/lib/balancers.js';
import { loadConfig } from '../../src/config.js';
import { requireBinary } from '../helpers/binaries.js';

const read = (p: string) => readFileSync(join(REPO_ROOT, p), 'utf8');
const K8S = 'deploy/k8s';

type Doc = Record<string, any>;
const k8sFiles = readdirSync(join(REPO_ROOT, K8S)).filter((f) => f.endsWith('.yaml'));
const k8sDocs: Doc[] = k8sFiles
  .filter((f) => f !== 'kustomization.yaml')
  .flatMap((f) => parseAllDocuments(read(`${K8S}/${f}`)).map((d) => d.toJS() as Doc))
  .filter(Boolean);
const kind = (k: string): Doc => {
  const found = k8sDocs.filter((d) => d['kind'] === k);
  expect(found, `exactly one ${k} in ${K8S}`).toHaveLength(1);
  return found[0]!;
};

const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };

describe('deploy/k8s', () => {
  const deployment = kind('Deployment');
  const configMap = kind('ConfigMap');
  const secret = kind('Secret');
  const pod = deployment['spec']['template']['spec'];
  const container = pod['containers'][0];
  // The example Secret holds placeholders that production refuses (checked below): an operator's
  // real values stand in for them here.
  const operatorSecrets = Object.fromEntries(
    Object.entries(secret['stringData'] as Record<string, string>).map(([k, v]) => [k, v.replace(/change-me[\w-]*/g, 'Zq81xN4vK2mP7rT5wY9bLs60dHe3uJc8aWf2')]),
  );
  const env: Record<string, string> = { ...configMap['data'], ...operatorSecrets };

  test('the ConfigMap and Secret together are a valid production configuration', () => {
    for (const v of ['REDIS_URL', 'DATABASE_URL', 'JWT_SECRET']) expect(Object.keys(secret['stringData']), `${v} in the Secret`).toContain(v);
    const config = loadConfig({ ...env, INSTANCE_ID: 'switchboard-abc' });
    expect(config.production).toBe(true);
    expect(config.databaseUrl).toMatch(/^postgres/);
    expect(config.redisUrl).toMatch(/^redis/);
    expect(config.trustProxy.length).toBeGreaterThan(0);
    // As shipped, the example cannot be deployed by mistake.
    expect(() => loadConfig({ ...configMap['data'], ...secret['stringData'] })).toThrow(/placeholder/);
  });

  test('the Deployment reads both, probes /readyz and /healthz, drains within its grace period', () => {
    const from = container['envFrom'].map((e: Doc) => e['configMapRef']?.['name'] ?? e['secretRef']?.['name']);
    expect(from).toEqual([configMap['metadata']['name'], secret['metadata']['name']]);
    const http = container['ports'].find((p: Doc) => p['name'] === 'http');
    expect(http['containerPort']).toBe(Number(env['PORT']));
    expect(container['readinessProbe']['httpGet']).toEqual({ path: '/readyz', port: 'http' });
    expect(container['livenessProbe']['httpGet']).toEqual({ path: '/healthz', port: 'http' });

    const preStop = container['lifecycle']['preStop']['exec']['command'] as string[];
    expect(preStop[0]).toBe('sleep');
    const preStopSeconds = Number(preStop[1]);
    expect(preStopSeconds).toBeGreaterThan(0);
    const config = loadConfig({ ...env, INSTANCE_ID: 'x' });
    expect(pod['terminationGracePeriodSeconds']).toBeGreaterThan(config.shutdownTimeoutMs / 1000 + preStopSeconds);
  });

  test('the Deployment runs as non-root without privilege escalation, with cpu and memory requests and limits', () => {
    expect(pod['securityContext']['runAsNonRoot']).toBe(true);
    expect(pod['securityContext']['runAsUser']).toBeGreaterThan(0);
    expect(container['securityContext']['allowPrivilegeEscalation']).toBe(false);
    for (const r of ['cpu', 'memory']) {
      expect(container['resources']['requests'][r], `requests.${r}`).toBeDefined();
      expect(container['resources']['limits'][r], `limits.${r}`).toBeDefined();
    }
  });

  test('the Deployment selects its own pods; Service (no session affinity), Ingress and HPA (2 replicas or more) point at it', () => {
    expect(deployment['spec']['template']['metadata']['labels']).toMatchObject(deployment['spec']['selector']['matchLabels']);
    const service = kind('Service');
    const labels = deployment['spec']['template']['metadata']['labels'];
    for (const [k, v] of Object.entries(service['spec']['selector'])) expect(labels[k]).toBe(v);
    expect(service['spec']['ports'][0]['targetPort']).toBe('http');
    expect(service['spec']['sessionAffinity'] ?? 'None').toBe('None');

    const ingress = kind('Ingress');
    const backend = ingress['spec']['rules'][0]['http']['paths'][0]['backend']['service'];
    expect(backend['name']).toBe(service['metadata']['name']);
    expect(backend['port']['name']).toBe(service['spec']['ports'][0]['name']);

    const hpa = kind('HorizontalPodAutoscaler');
    expect(hpa['spec']['scaleTargetRef']).toMatchObject({ kind: 'Deployment', name: deployment['metadata']['name'] });
    expect(hpa['spec']['minReplicas']).toBeGreaterThanOrEqual(2);
  });

  test("the Ingress has the reference's cookie-affinity and long-timeout annotations", () => {
    const a = kind('Ingress')['metadata']['annotations'];
    expect(a).toMatchObject({
      'nginx.ingress.kubernetes.io/affinity': 'cookie',
      'nginx.ingress.kubernetes.io/affinity-mode': 'balanced',
      'nginx.ingress.kubernetes.io/session-cookie-expires': '172800',
      'nginx.ingress.kubernetes.io/session-cookie-max-age': '172800',
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
    });
    expect(a['nginx.ingress.kubernetes.io/session-cookie-name']).toMatch(/^\w+$/);
  });

  test('kustomization.yaml lists every manifest', () => {
    const k = parse(read(`${K8S}/kustomization.yaml`)) as Doc;
    expect([...k['resources']].sort()).toEqual(k8sFiles.filter((f) => f !== 'kustomization.yaml').sort());
  });
});

describe('deploy/compose', () => {
  const dockerfile = read('deploy/compose/Dockerfile');
  const compose = parse(read('deploy/compose/docker-compose.yml'), { merge: true }) as Doc;
  const services = compose['services'] as Record<string, Doc>;
  const instances = Object.keys(services).filter((n) => /^switchboard-\d+$/.test(n));

  test("the image's start command is `npm start`'s script without npm: SIGTERM reaches the server", () => {
    const script = pkg.scripts['start']!;
    // The script execs the server, so a SIGTERM to `npm start` drains it too (the contract).
    expect(script).toMatch(/^exec /);
    const cmd = /^CMD\s+(\[.*\])\s*$/m.exec(dockerfile);
    expect(cmd, 'exec-form CMD').not.toBeNull();
    expect(JSON.parse(cmd![1]!)).toEqual(script.replace(/^exec\s+/, '').split(/\s+/));
    expect(dockerfile).not.toMatch(/^(CMD|ENTRYPOINT)\s+.*\bnpm\b/m);
  });

  test('multi-stage, production dependencies only, non-root, health check on /healthz', () => {
    const stages = dockerfile.match(/^FROM\s+/gm) ?? [];
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/npm ci\b/);
    expect(dockerfile).toMatch(/--omit=dev/);
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const user = /^USER\s+(\S+)/m.exec(runtime);
    expect(user, 'USER in the runtime stage').not.toBeNull();
    expect(['root', '0']).not.toContain(user![1]);
    expect(runtime).toMatch(/^HEALTHCHECK[\s\S]*\/healthz/m);
    expect(runtime).not.toMatch(/npm (ci|install)/);
  });

  test('3 instances sharing Redis and PostgreSQL, drained within stop_grace_period, behind nginx', () => {
    expect(instances).toHaveLength(3);
    const ids = new Set<string>();
    for (const name of instances) {
      const s = services[name]!;
      const env = s['environment'] as Record<string, string>;
      expect(env['REDIS_URL']).toMatch(/^redis:\/\/redis:/);
      expect(env['DATABASE_URL']).toMatch(/^postgres:\/\/.*@postgres:/);
      ids.add(env['INSTANCE_ID']!);
      expect(s['init']).toBe(true);
      const grace = /^(\d+)s$/.exec(s['stop_grace_period']);
      expect(Number(grace![1])).toBeGreaterThan(Number(env['SHUTDOWN_TIMEOUT_MS'] ?? 30000) / 1000);
      expect(s['build']['dockerfile']).toBe('deploy/compose/Dockerfile');
    }
    expect(ids.size).toBe(3);
    expect(services['redis']).toBeDefined();
    expect(services['postgres']).toBeDefined();
    expect(services['nginx']!['volumes']).toContain('../nginx/nginx.conf:/etc/nginx/nginx.conf:ro');
    // nginx.conf's upstream is exactly these services.
    const servers = [...read('deploy/nginx/nginx.conf').matchAll(/^\s*server\s+([\w.-]+):(\d+)\b/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(servers.sort()).toEqual(instances.map((n) => `${n}:${(services[n]!['environment'] as Record<string, string>)['PORT']}`).sort());
    const listen = /^\s*listen\s+(\d+);/m.exec(read('deploy/nginx/nginx.conf'));
    expect(services['nginx']!['ports']).toContain(`${listen![1]}:${listen![1]}`);
  });
});

describe('deploy/nginx and deploy/haproxy', () => {
  const upstreams = ['127.0.0.1:3001', '127.0.0.1:3002', '127.0.0.1:3003'];

  test('nginx.conf: sticky upstream, WebSocket and forwarding headers, long timeouts, probes', () => {
    const conf = read('deploy/nginx/nginx.conf');
    expect(conf).toMatch(/^\s*ip_hash;/m);
    expect(conf).toMatch(/^\s*#\s*hash \$\w+ consistent;/m);
    expect(conf).toMatch(/map \$http_upgrade \$connection_upgrade/);
    const socketIo = conf.slice(conf.indexOf('location /socket.io/'));
    for (const line of [
      'proxy_http_version 1.1;',
      'proxy_set_header Upgrade $http_upgrade;',
      'proxy_set_header Connection $connection_upgrade;',
      'proxy_set_header X-Real-IP $remote_addr;',
      'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
      'proxy_set_header X-Forwarded-Proto $scheme;',
      'proxy_read_timeout 3600s;',
      'proxy_send_timeout 3600s;',
    ])
      expect(socketIo).toContain(line);
    expect(socketIo).toMatch(/proxy_set_header Host \$(http_)?host;/);
    expect(conf).toMatch(/location = \/healthz/);
    expect(conf).toMatch(/location = \/readyz/);
  });

  test.each(['ip_hash', 'cookie', 'none'] as const)('nginx -t accepts nginx.conf rendered with sticky=%s', (sticky) => {
    requireBinary('nginx');
    const r = checkNginxConf({ upstreams, sticky });
    expect(r.output).toMatch(/test is successful/);
    expect(r.ok).toBe(true);
  });

  test('haproxy.cfg: cookie affinity, readiness checks, tunnel and FIN timeouts', () => {
    const cfg = read('deploy/haproxy/haproxy.cfg');
    expect(cfg).toMatch(/^\s*cookie SERVERID insert indirect nocache\b/m);
    expect(cfg).toMatch(/^\s*option httpchk GET \/readyz\s*$/m);
    expect(cfg).toMatch(/^\s*http-check expect status 200\s*$/m);
    expect(cfg).toMatch(/^\s*timeout tunnel 3600s\s*$/m);
    expect(cfg).toMatch(/^\s*timeout client-fin \d+s\s*$/m);
    expect(cfg).toMatch(/^\s*timeout server-fin \d+s\s*$/m);
    expect(cfg).toMatch(/^\s*default-server check inter \S+.* fall \d+ rise \d+/m);
  });

  test.each([true, false])('haproxy -c accepts haproxy.cfg rendered with sticky=%s', (sticky) => {
    requireBinary('haproxy');
    const r = checkHaproxyCfg({ upstreams, sticky });
    expect(r.output).toMatch(/Configuration file is valid/);
    expect(r.ok).toBe(true);
  });
});
