// The demo page in a real browser (Debian's chromium driven by playwright-core, no downloads), through
// a real nginx in front of two instances that share Redis and PostgreSQL.
//
// Getting the two browsers onto DIFFERENT instances: with `ip_hash` (the reference's stickiness) every
// context comes from 127.0.0.1 and lands on one instance. nginx is therefore run in its `cookie` mode
// (a consistent hash on the `sb_affinity` cookie, see deploy/nginx/nginx.conf). Which instance a cookie
// value hashes to is found by asking nginx: GET /healthz with that cookie answers the instance's id.
// Each context is given a cookie that leads to a different instance before it loads the page.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { startNginx, type Balancer } from '../helpers/balancer.js';
import { ROOT, type Cluster, type Instance } from '../helpers/instance.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { token } from '../helpers/tokens.js';

const ARTIFACTS = join(ROOT, 'test-results');
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let stack: Stack | undefined;
let cluster: Cluster | undefined;
let nginx: Balancer | undefined;
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStack('browser', 2, { SHUTDOWN_NOTICE_MS: '1000', LOG_LEVEL: 'warn' });
  cluster = stack.cluster;
  nginx = await startNginx({ upstreams: cluster.instances.map((i) => i.url), sticky: 'cookie' });
  // playwright-core's launch() runs the browser on a fresh temporary profile (its own --user-data-dir)
  // and deletes it on close; no browser is ever downloaded.
  browser = await chromium.launch({ executablePath: requireBinary('chromium'), headless: true, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await nginx?.stop();
  await stack?.stop();
});

/** A value of nginx's affinity cookie that hashes to `instance`. */
async function cookieFor(instance: Instance): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const value = `probe-${i}`;
    const r = await fetch(`${nginx!.url}/healthz`, { headers: { cookie: `sb_affinity=${value}` } });
    const { instanceId } = (await r.json()) as { instanceId: string };
    if (instanceId === instance.id) return value;
  }
  throw new Error(`no affinity cookie value leads to ${instance.id}`);
}

async function signIn(name: string, instance: Instance): Promise<Page> {
  const context = await browser!.newContext();
  contexts.push(context);
  await context.addCookies([{ name: 'sb_affinity', value: await cookieFor(instance), url: nginx!.url }]);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[${name}] page error:`, err));
  await page.goto(nginx!.url);
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Your name').press('Enter');
  await page.locator(`#banner[data-status="connected"][data-instance="${instance.id}"]`).waitFor({ timeout: 15_000 });
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ state: 'hidden' });
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `browser-${name}.png`), fullPage: true });

describe('demo page in chromium, through nginx, across a SIGTERM', () => {
  it('two users on different instances see each other type, come and go, and keep chatting after one instance drains', async () => {
    const [a, b] = cluster!.instances as [Instance, Instance];
    const alice = await signIn('alice', a);
    const bob = await signIn('bob', b);

    // Presence, across instances.
    await alice.locator('#presence li', { hasText: 'bob' }).waitFor();
    await bob.locator('#presence li', { hasText: 'alice' }).waitFor();

    // Typing, both ways (the keyboard only).
    await alice.getByRole('textbox', { name: 'Message' }).pressSequentially('hello bob');
    await bob.locator('#typing', { hasText: 'alice is typing' }).waitFor();
    await alice.getByRole('textbox', { name: 'Message' }).press('Enter');
    await bob.locator('#messages li', { hasText: 'hello bob' }).waitFor();
    await bob.getByRole('textbox', { name: 'Message' }).pressSequentially('hi alice');
    await alice.locator('#typing', { hasText: 'bob is typing' }).waitFor();
    await bob.getByRole('textbox', { name: 'Message' }).press('Enter');
    await alice.locator('#messages li', { hasText: 'hi alice' }).waitFor();
    await Promise.all([shot(alice, 'alice-before'), shot(bob, 'bob-before')]);

    // Alice's instance is deployed away: she is told, reconnects (through nginx) to the survivor.
    // The banner's states are recorded in the page: "reconnecting" may last only milliseconds.
    await alice.locator('#banner').evaluate((el) => {
      const seen: string[] = [];
      (window as unknown as { bannerStates: string[] }).bannerStates = seen;
      new MutationObserver(() => seen.push(`${el.dataset['status']}@${el.dataset['instance']}`)).observe(el, { attributes: true });
    });
    expect(await a.stop('SIGTERM')).toBe(0);
    await alice.locator(`#banner[data-status="connected"][data-instance="${b.id}"]`).waitFor({ timeout: 30_000 });
    const states = await alice.evaluate(() => (window as unknown as { bannerStates: string[] }).bannerStates);
    expect(states.some((st) => st.startsWith('reconnecting'))).toBe(true);
    expect(states.at(-1)).toBe(`connected@${b.id}`);

    // Still one conversation: new messages both ways, typing, presence; nothing shown twice.
    await alice.getByRole('textbox', { name: 'Message' }).pressSequentially('still here');
    await bob.locator('#typing', { hasText: 'alice is typing' }).waitFor();
    await alice.getByRole('textbox', { name: 'Message' }).press('Enter');
    await bob.locator('#messages li', { hasText: 'still here' }).waitFor();
    await bob.getByRole('textbox', { name: 'Message' }).fill('welcome back');
    await bob.getByRole('textbox', { name: 'Message' }).press('Enter');
    await alice.locator('#messages li', { hasText: 'welcome back' }).waitFor();
    await bob.locator('#presence li', { hasText: 'alice' }).waitFor();
    for (const page of [alice, bob]) {
      const seqs = await page.locator('#messages li').evaluateAll((lis) => lis.map((li) => Number((li as HTMLElement).dataset['seq'])));
      expect(seqs).toEqual([1, 2, 3, 4]);
    }
    await Promise.all([shot(alice, 'alice-after'), shot(bob, 'bob-after')]);

    // History with infinite scroll upwards: 120 messages in #random, pages of 50 as the list scrolls up.
    const admin = await token('ops', { admin: true });
    for (let i = 1; i <= 120; i++) {
      const r = await fetch(`${b.url}/api/channels/random/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ content: `old ${i}` }),
      });
      expect(r.status).toBe(201);
    }
    await bob.getByRole('button', { name: '# random' }).click();
    const items = bob.locator('#messages li');
    await bob.locator('#messages li', { hasText: 'old 120' }).waitFor();
    expect(await items.count()).toBe(50);
    for (const expected of [100, 120]) {
      await bob.locator('#messages').evaluate((el) => (el.scrollTop = 0));
      await bob.locator('#messages li[data-seq="' + (121 - expected) + '"]').waitFor();
    }
    const seqs = await items.evaluateAll((lis) => lis.map((li) => Number((li as HTMLElement).dataset['seq'])));
    expect(seqs).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    await shot(bob, 'bob-history');
  }, 90_000);
});
