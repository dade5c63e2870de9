// The demo page in a real browser (Debian's chromium driven by playwright-core, no downloads), through
// a real nginx in front of two instances that share Redis and PostgreSQL.
//
// Getting the two browsers onto DIFFERENT instances: with `ip_hash` (the reference's stickiness) every
// context comes from 127.0.0.1 and lands on one instance. nginx is therefore run in its `cookie` mode
// (a consistent hash on the `sb_affinity` cookie, see deploy/nginx/nginx.conf). Which instance a cookie
// value hashes to is found by asking nginx: GET /healthz with that cookie answers the instance's id.
// Each context is given a cookie that leads to a different instance before it loads the page.
//
// The page's passing states (a send waiting offline, a reconnection waiting for its backoff, the drain
// notice) are held for checks and screenshots with playwright's clock: paused, the page's timers do
// not fire, so the state stays until the test moves time on (network and sockets are not affected).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/binaries.js';
import { startNginx, type Balancer } from '../helpers/balancer.js';
import { ROOT, type Cluster, type Instance } from '../helpers/instance.js';
import { waitFor } from '../helpers/ports.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { onDevSecret, token } from '../helpers/tokens.js';

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
const devSecret = onDevSecret();

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // A notice long enough to look at the drain banner; a message limit below the page's own (4000), as
  // an operator may set, so that the server refuses a message the page lets through.
  // The demo's sign-in exists only on the generated development secret: the instances share one.
  stack = await startStack('browser', 2, { ...devSecret.env, SHUTDOWN_NOTICE_MS: '10000', MAX_MESSAGE_LENGTH: '1000', LOG_LEVEL: 'warn' });
  cluster = stack.cluster;
  nginx = await startNginx({ upstreams: cluster.instances.map((i) => i.url), sticky: 'cookie' });
  // playwright-core's launch() runs the browser on a fresh temporary profile (its own --user-data-dir)
  // and deletes it on close; no browser is ever downloaded.
  browser = await chromium.launch({ executablePath: requireBinary('chromium'), headless: true, args: CHROMIUM_ARGS });
});

// A test's pages are closed when it ends, so that their reconnections cannot disturb the next test's
// routing (nginx counts an instance as failed for a while after a request to it fails).
afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close().catch(() => undefined);
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await nginx?.stop();
  await stack?.stop();
  devSecret.remove();
});

const isRunning = (i: Instance) => i.proc.exitCode === null && i.proc.signalCode === null;

/** Where nginx sends each of 64 values of its affinity cookie: value → instance id. */
async function probeCookies(): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  for (let i = 0; i < 64; i++) {
    const value = `probe-${i}`;
    const r = await fetch(`${nginx!.url}/healthz`, { headers: { cookie: `sb_affinity=${value}` } });
    seen.set(value, ((await r.json()) as { instanceId: string }).instanceId);
  }
  return seen;
}

/**
 * A value of nginx's affinity cookie that hashes to `instance`. While nginx counts an instance as
 * failed (for its `fail_timeout`, 5 s, e.g. after a restart) it sends that instance's share to
 * another, and a cookie found then would change instance later: so only a probe in which every
 * running instance gets its share counts.
 */
async function cookieFor(instance: Instance): Promise<string> {
  const live = cluster!.instances.filter(isRunning).map((i) => i.id);
  const stable = async () => {
    const seen = await probeCookies();
    const reached = new Set(seen.values());
    if (!live.every((id) => reached.has(id))) return undefined;
    return [...seen].find(([, id]) => id === instance.id)?.[0];
  };
  return waitFor(stable, `an affinity cookie that leads to ${instance.id}, with every instance in nginx's rotation`, 15_000, 500);
}

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

interface PageOptions {
  /** @default playwright's 1280x720 */
  viewport?: { width: number; height: number };
  /** Install playwright's clock before the page loads, so that the test can pause the page's timers. @default false */
  clock?: boolean;
}

/** A fresh browser context whose requests nginx sends to `instance`, showing the sign-in form. */
async function openPage(label: string, instance: Instance, o: PageOptions = {}): Promise<Page> {
  const context = await browser!.newContext(o.viewport ? { viewport: o.viewport } : {});
  contexts.push(context);
  await context.addCookies([{ name: 'sb_affinity', value: await cookieFor(instance), url: nginx!.url }]);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[${label}] page error:`, err));
  if (o.clock) await page.clock.install();
  await page.goto(nginx!.url);
  return page;
}

async function submitName(page: Page, name: string): Promise<void> {
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Your name').press('Enter');
}

async function signIn(name: string, instance: Instance, o: PageOptions = {}): Promise<Page> {
  const page = await openPage(name, instance, o);
  await submitName(page, name);
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

/** The cluster's instances, each restarted (same id and port, so nginx finds it) if an earlier test stopped it. */
async function running(): Promise<[Instance, Instance]> {
  const list = cluster!.instances;
  for (const [i, inst] of list.entries()) if (!isRunning(inst)) list[i] = await inst.restart();
  return list as [Instance, Instance];
}

/** Screenshots `demo-<name>-1280.png` and `demo-<name>-390.png`, ending at the phone's width. */
async function demoShots(page: Page, name: string): Promise<void> {
  for (const size of [DESKTOP, PHONE]) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(ARTIFACTS, `demo-${name}-${size.width}.png`), fullPage: true });
  }
}

/** Fails unless every element each selector matches (at least one each) lies wholly inside the viewport, and the page does not scroll sideways. */
async function expectOnScreen(page: Page, selectors: string[]): Promise<void> {
  const { width, height } = page.viewportSize()!;
  for (const selector of selectors) {
    const boxes = await page.locator(selector).evaluateAll((els) =>
      els.map((el) => {
        const r = el.getBoundingClientRect();
        return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
      }),
    );
    expect(boxes.length, `${selector} at ${width}x${height}`).toBeGreaterThan(0);
    for (const b of boxes) {
      const inside = b.left >= 0 && b.top >= 0 && b.right <= width && b.bottom <= height && b.right > b.left && b.bottom > b.top;
      expect(inside, `${selector} at ${width}x${height}: ${JSON.stringify(b)}`).toBe(true);
    }
  }
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(width);
}

const CHAT_CONTROLS = ['#banner', '#channels button', '#channel-title', '#messages', '#message', '#composer button[type="submit"]', '#presence li'];

/** Stops the page's timers (a little ahead of its clock: playwright cannot pause in the past). */
async function pauseClock(page: Page): Promise<void> {
  const now = await page.evaluate(() => Date.now());
  await page.clock.pauseAt(now + 1000);
}

/**
 * With the clock paused and the page offline: moves the clock on in small steps until a reconnection
 * attempt waits for its backoff ("Retry now" shows). An attempt under way ends on timers too (engine.io
 * reports a failed request on a 0 ms timer); the next one waits at least 500 ms. From then on nothing
 * but "Retry now" can reconnect.
 */
async function untilAttemptWaits(page: Page): Promise<void> {
  const retryNow = page.getByRole('button', { name: 'Retry now' });
  const waiting = async () => (await retryNow.isVisible()) || (await page.clock.runFor(50), false);
  await waitFor(waiting, 'a reconnection attempt waiting for its backoff', 15_000, 0);
}

/** Types and sends a message with the keyboard. */
async function say(page: Page, text: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

describe('demo page on a phone and in trouble', () => {
  it('says the sign-in rules, takes a name with a space, refuses what the server refuses with its words, and fits 390 px and 1280 px', async () => {
    const [, b] = await running();
    const page = await openPage('signin', b, { viewport: PHONE });
    const name = page.getByLabel('Your name');
    expect((await name.getAttribute('aria-describedby'))?.split(' ')).toContain('name-rules');
    expect(await page.locator('#name-rules').textContent()).toMatch(/1 to 128 characters.*spaces/s);
    await expectOnScreen(page, ['#name', '#name-rules', '#signin button[type="submit"]']);

    const error = page.locator('#signin-error');
    await submitName(page, '   ');
    await error.filter({ hasText: 'enter a name' }).waitFor();
    await submitName(page, 'system');
    await error.filter({ hasText: `"system" is the server's own name` }).waitFor();
    // Longer than the server's 128 (past the field's maxlength, which a user cannot type through): its refusal, in its words.
    await name.evaluate((el) => el.removeAttribute('maxlength'));
    await submitName(page, 'x'.repeat(129));
    await error.filter({ hasText: 'the server refused it (HTTP 400)' }).filter({ hasText: /128/ }).waitFor();
    await name.evaluate((el) => el.setAttribute('maxlength', '128'));
    await demoShots(page, 'signin');

    await submitName(page, '  Ada Lovelace ');
    // This test is about the form and the layout, not routing: any instance will do.
    await page.locator('#banner[data-status="connected"]').waitFor({ timeout: 15_000 });
    await page.locator('#presence li', { hasText: 'Ada Lovelace (you)' }).waitFor();
    await say(page, 'hello from a phone');
    await page.locator('#messages li[data-state="sent"]', { hasText: 'hello from a phone' }).waitFor();
    expect(await page.locator('#messages li', { hasText: 'hello from a phone' }).locator('.who').textContent()).toBe('Ada Lovelace');
    await expectOnScreen(page, CHAT_CONTROLS);

    await page.setViewportSize(DESKTOP);
    await expectOnScreen(page, CHAT_CONTROLS);
    // Wide: channels, conversation and presence side by side.
    const [nav, room, aside] = await Promise.all(['nav', '#room', 'aside'].map((sel) => page.locator(sel).boundingBox()));
    expect(nav!.x + nav!.width).toBeLessThanOrEqual(room!.x);
    expect(room!.x + room!.width).toBeLessThanOrEqual(aside!.x);
    await demoShots(page, 'chat');
  }, 60_000);

  it('shows a send made offline as pending and then sent, the reconnection countdown with "Retry now", and a failed send with Retry', async () => {
    const [, b] = await running();
    const page = await signIn('carol', b, { viewport: PHONE, clock: true });
    const context = page.context();
    const banner = page.locator('#banner');
    const retryNow = page.getByRole('button', { name: 'Retry now' });
    const outbox = page.locator('#outbox li');
    await page.locator('#presence li', { hasText: 'carol (you)' }).waitFor();

    // Offline (the browser fires `offline`, the socket closes, new connections fail): the send waits.
    await context.setOffline(true);
    await say(page, 'sent from a tunnel');
    await outbox.filter({ hasText: 'sent from a tunnel' }).and(page.locator('[data-state="pending"]')).waitFor();
    expect(await page.getByRole('textbox', { name: 'Message' }).inputValue()).toBe('');
    expect(await page.locator('#messages li', { hasText: 'sent from a tunnel' }).count()).toBe(0);
    // The reconnection loop: which attempt comes next, in how long, and a button to make it now.
    await retryNow.waitFor();
    expect(await banner.getAttribute('data-status')).toBe('reconnecting');
    expect(await page.locator('#banner-text').textContent()).toMatch(/^Connection lost · attempt \d+$/);
    expect(await page.locator('#countdown').textContent()).toMatch(/^(in \d+ s|now)$/);
    await expectOnScreen(page, [...CHAT_CONTROLS, '#retry-now', '#outbox li']);
    await demoShots(page, 'offline');

    // Back online with the page's clock paused: no scheduled attempt can fire, only "Retry now" reconnects.
    await pauseClock(page);
    await untilAttemptWaits(page);
    await context.setOffline(false);
    await retryNow.click();
    await page.locator(`#banner[data-status="connected"][data-instance="${b.id}"]`).waitFor({ timeout: 15_000 });
    await page.locator('#messages li[data-state="sent"]', { hasText: 'sent from a tunnel' }).waitFor();
    await outbox.first().waitFor({ state: 'detached' });

    // Offline past the SDK's sendTimeout (30 s, moved on by the clock): the send fails, with Retry.
    await context.setOffline(true);
    await banner.and(page.locator('[data-status="reconnecting"]')).waitFor();
    await say(page, 'lost in a tunnel');
    await outbox.filter({ hasText: 'lost in a tunnel' }).and(page.locator('[data-state="pending"]')).waitFor();
    await page.clock.fastForward(31_000);
    const failed = outbox.filter({ hasText: 'lost in a tunnel' }).and(page.locator('[data-state="failed"]'));
    await failed.filter({ hasText: 'Not sent: no answer in time.' }).waitFor();
    await untilAttemptWaits(page);
    await expectOnScreen(page, [...CHAT_CONTROLS, '#outbox li', '#outbox button']);
    await demoShots(page, 'failed');
    await failed.getByRole('button', { name: 'Retry' }).click();
    await outbox.filter({ hasText: 'lost in a tunnel' }).and(page.locator('[data-state="pending"]')).waitFor();
    await context.setOffline(false);
    await retryNow.click();
    await page.locator('#messages li[data-state="sent"]', { hasText: 'lost in a tunnel' }).waitFor({ timeout: 15_000 });
    await outbox.first().waitFor({ state: 'detached' });

    // A message the server refuses for good (over its MAX_MESSAGE_LENGTH of 1000, within the page's 4000): no Retry, Edit gives the text back.
    const long = 'y'.repeat(1001);
    await say(page, long);
    const refused = outbox.and(page.locator('[data-state="failed"]'));
    await refused.filter({ hasText: 'content is at most 1000 characters' }).waitFor();
    expect(await refused.getByRole('button', { name: 'Retry' }).count()).toBe(0);
    await refused.getByRole('button', { name: 'Edit' }).click();
    expect(await page.getByRole('textbox', { name: 'Message' }).inputValue()).toBe(long);
    await outbox.first().waitFor({ state: 'detached' });
    await page.clock.resume();

    // Each message stored once, in order, the retried one included.
    const contents = await page.locator('#messages li p').allTextContents();
    expect(contents.filter((c) => c === 'sent from a tunnel' || c === 'lost in a tunnel')).toEqual(['sent from a tunnel', 'lost in a tunnel']);
  }, 90_000);

  it('shows the drain notice with its countdown while the instance shuts down, then reconnects to the other one', async () => {
    const [a, b] = await running();
    const page = await signIn('dave', a, { viewport: DESKTOP, clock: true });
    await page.locator('#presence li', { hasText: 'dave (you)' }).waitFor();
    // Paused, the page keeps the notice until the test moves on (the SDK would leave after reconnectDelay, anywhere in [0, 10 s]).
    await pauseClock(page);
    const exit = a.stop('SIGTERM');
    const banner = page.locator(`#banner[data-status="draining"][data-instance="${a.id}"]`);
    await banner.waitFor({ timeout: 8_000 });
    expect(await page.locator('#banner-text').textContent()).toBe(`Instance ${a.id} is shutting down · moving to another one`);
    expect(await page.locator('#countdown').textContent()).toMatch(/^(in \d+ s|now)$/);
    expect(await banner.getAttribute('title')).toBe('This instance is shutting down; reconnect to another one');
    expect(await page.getByRole('button', { name: 'Retry now' }).isVisible()).toBe(false);
    await demoShots(page, 'drain');
    await expectOnScreen(page, CHAT_CONTROLS);

    await page.clock.resume();
    await page.locator(`#banner[data-status="connected"][data-instance="${b.id}"]`).waitFor({ timeout: 30_000 });
    expect(await exit).toBe(0);
  }, 60_000);
});
