// Who is signed in: a token in this browser's local storage, so every tab of the same
// fan is the same fan (and a second tab keeps the first one's place in the queue).

export interface Session {
  userId: string;
  token: string;
  admin: boolean;
}

const KEY = "ticketdrop.session";
const listeners: (() => void)[] = [];

export const session = {
  current(): Session | undefined {
    const stored = localStorage.getItem(KEY);
    return stored ? (JSON.parse(stored) as Session) : undefined;
  },
  set(value: Session | undefined): void {
    if (value) localStorage.setItem(KEY, JSON.stringify(value));
    else localStorage.removeItem(KEY);
    listeners.forEach((listener) => listener());
  },
  onChange(listener: () => void): void {
    listeners.push(listener);
  },
};

/** What the page remembers per fan and event across a refresh (the admission, a purchase under way). */
export function remembered<T>(name: string, eventId: string): { get(): T | undefined; set(value: T | undefined): void } {
  const key = () => `ticketdrop.${name}.${session.current()?.userId ?? "-"}.${eventId}`;
  return {
    get: () => {
      const stored = localStorage.getItem(key());
      return stored ? (JSON.parse(stored) as T) : undefined;
    },
    set: (value) => (value === undefined ? localStorage.removeItem(key()) : localStorage.setItem(key(), JSON.stringify(value))),
  };
}

window.addEventListener("storage", (event) => {
  if (event.key === KEY) listeners.forEach((listener) => listener());
});
