// The connection banner: what the SDK's connection state means for the user, with a countdown to the
// next reconnection attempt (and a "Retry now" button) or to leaving a draining instance.
import type { ConnectionState } from 'switchboard-client';

export interface BannerView {
  /** The banner's `data-status`: the SDK's status, or `draining` while connected to an instance that shuts down. */
  status: string;
  /** The announced text (the live region). */
  text: string;
  /** What the countdown counts down to (ms since the epoch), if anything. */
  countdownTo: number | undefined;
  /** Whether a reconnection attempt waits for its backoff, so "Retry now" can make it at once. */
  retryNow: boolean;
  /** The server's own words, shown on hover. */
  title: string;
}

/** The banner for a connection state. Pure. */
export function bannerView(s: Readonly<ConnectionState>): BannerView {
  const base = { countdownTo: undefined, retryNow: false, title: '' };
  const instance = s.instance ? `instance ${s.instance}` : 'this instance';
  if (s.status === 'connected' && s.draining) {
    const text = `${capitalize(instance)} is shutting down · moving to another one`;
    return { ...base, status: 'draining', text, countdownTo: s.draining.leaveAt, title: s.draining.message };
  }
  if (s.status === 'connected') return { ...base, status: s.status, text: `Connected${s.instance ? ` · ${instance}` : ''}` };
  if (s.status === 'offline') return { ...base, status: s.status, text: 'Offline' };
  const lead = s.status === 'connecting' ? 'Connecting' : 'Connection lost';
  const waiting = s.nextAttemptAt !== undefined;
  const text = waiting || s.attempt > 0 ? `${lead} · attempt ${s.attempt + 1}${waiting ? '' : '…'}` : `${lead} · reconnecting…`;
  return { ...base, status: s.status, text, countdownTo: s.nextAttemptAt, retryNow: waiting, title: s.lastError?.message ?? '' };
}

/** "in 3 s" (whole seconds, rounded up), or "now" once the time has come. */
export function countdownText(to: number, now: number): string {
  const seconds = Math.ceil((to - now) / 1000);
  return seconds > 0 ? `in ${seconds} s` : 'now';
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** Renders states into the banner's elements; the countdown ticks outside the live region, so it is not announced every second. */
export class Banner {
  private ticker: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly el: { root: HTMLElement; text: HTMLElement; countdown: HTMLElement; retryNow: HTMLButtonElement },
    onRetryNow: () => void,
  ) {
    el.retryNow.addEventListener('click', onRetryNow);
  }

  show(state: Readonly<ConnectionState>): void {
    const view = bannerView(state);
    const { root, text, countdown, retryNow } = this.el;
    root.dataset['status'] = view.status;
    root.dataset['instance'] = state.instance ?? '';
    root.title = view.title;
    if (text.textContent !== view.text) text.textContent = view.text;
    retryNow.hidden = !view.retryNow;
    clearInterval(this.ticker);
    this.ticker = undefined;
    const to = view.countdownTo;
    countdown.textContent = to === undefined ? '' : countdownText(to, Date.now());
    if (to !== undefined) this.ticker = setInterval(() => (countdown.textContent = countdownText(to, Date.now())), 1000);
  }
}
