// Every retry loop of the page: a ceiling of attempts and an exponential backoff with
// jitter, never a silent retry forever.

export interface Backoff {
  attempts: number;
  baseMs: number;
  maxMs: number;
}

/** Reconnecting a stream: 10 tries, 250 ms doubling to 8 s (about a minute in all). */
export const STREAM_RECONNECT: Backoff = { attempts: 10, baseMs: 250, maxMs: 8_000 };

/** The wait before try `attempt` (from 1): base × 2^(attempt−1), capped, jittered into its upper half. */
export function delay(backoff: Backoff, attempt: number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}
