// The notifier's WebSocket as the console keeps it open (shared/contracts/ws.py has the frames).
//
// It remembers the offset of the last event of each queue and reconnects after a jittered,
// growing delay with `?since=` those offsets, so events missed while away arrive first, marked
// `recovered`, or a `resync` says to refetch over REST. The offsets live in sessionStorage, so
// a reload of the page catches up too. Events: "state" ({state, detail}), "welcome", "event"
// (an EventPush), "resync", "expiring" ({expires_in_s, refreshed}).

// Closed for a reason reconnecting with the same token would not fix (bad request, refused
// token, forbidden origin, message too big).
const FINAL_CLOSE_CODES = new Set([4400, 4401, 4403, 1009]);
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;

export class LiveConnection extends EventTarget {
  /**
   * `url`: the notifier's ws(s)://host/ws. `token()`: the current access token. `renew()`: a
   * promise of a fresh token when the notifier warns that it runs out, or null if none can be
   * had (a pasted token). `storageKey`: where this user's offsets are kept.
   */
  constructor({ url, token, renew, storageKey }) {
    super();
    this.url = url;
    this.token = token;
    this.renew = renew;
    this.storageKey = storageKey;
    this.offsets = this.#loadOffsets();
    this.state = "offline";
    this.socket = null;
    this.stopped = true;
    this.delayMs = BACKOFF_MIN_MS;
    // When the notifier said to come back (a `reconnect` message before its restart).
    this.comeBackMs = null;
    this.timer = null;
    this.connections = 0;
  }

  start() {
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close(1000, "signed out");
    this.socket = null;
    this.#setState("offline", "signed out");
  }

  #connect() {
    const url = new URL(this.url);
    const since = Object.entries(this.offsets).map(([queue, entry]) => `${queue}:${entry}`);
    if (since.length) url.searchParams.set("since", since.join(","));
    this.#setState(this.connections === 0 ? "connecting" : "reconnecting", "connecting");
    const socket = new WebSocket(url);
    this.socket = socket;
    // The token goes in the first message, not the URL: URLs end up in proxies' access logs.
    socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "auth", token: this.token() })));
    socket.addEventListener("message", (message) => this.#receive(message.data));
    socket.addEventListener("close", (close) => this.#closed(socket, close));
  }

  #receive(frame) {
    let message;
    try {
      message = JSON.parse(frame);
    } catch {
      return;
    }
    switch (message.type) {
      case "welcome":
        this.connections += 1;
        this.delayMs = BACKOFF_MIN_MS;
        this.#setState("live", `as ${message.sub} in ${message.rooms.join(", ")}`);
        this.dispatchEvent(new CustomEvent("welcome", { detail: message }));
        break;
      case "event": {
        const colon = message.offset.indexOf(":");
        this.offsets[message.offset.slice(0, colon)] = message.offset.slice(colon + 1);
        this.#saveOffsets();
        this.dispatchEvent(new CustomEvent("event", { detail: message }));
        break;
      }
      case "resync":
        // History no longer reaches back to our offset: start that queue from now on.
        delete this.offsets[message.queue];
        this.#saveOffsets();
        this.dispatchEvent(new CustomEvent("resync", { detail: message }));
        break;
      case "token_expiring":
        this.#refresh(message.expires_in_s);
        break;
      case "reconnect":
        // The notifier restarts: come back when it says, each client at its own moment.
        this.comeBackMs = message.after_ms;
        break;
      default:
        break; // token_refreshed, errors and messages newer than this page: nothing to do.
    }
  }

  async #refresh(expiresInS) {
    let token = null;
    try {
      token = await this.renew?.();
    } catch {
      token = null;
    }
    if (token && this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "refresh", token }));
    }
    this.dispatchEvent(
      new CustomEvent("expiring", { detail: { expires_in_s: expiresInS, refreshed: Boolean(token) } }),
    );
  }

  #closed(socket, close) {
    if (socket !== this.socket) return;
    this.socket = null;
    if (this.stopped) return;
    if (FINAL_CLOSE_CODES.has(close.code)) {
      this.#setState("closed", close.reason || `closed (${close.code})`);
      this.dispatchEvent(new CustomEvent("closed", { detail: { code: close.code, reason: close.reason } }));
      return;
    }
    // As the notifier asked (a restart, or too many handshakes at once: 1013 says when), else
    // jittered, so that clients dropped together do not all come back at the same moment.
    const retryHint = close.code === 1013 ? /retry after (\d+) ms/.exec(close.reason) : null;
    let delayMs = this.comeBackMs ?? (retryHint ? Number(retryHint[1]) : null);
    this.comeBackMs = null;
    if (delayMs === null) {
      delayMs = this.delayMs * (0.5 + Math.random() / 2);
      this.delayMs = Math.min(this.delayMs * 2, BACKOFF_MAX_MS);
    }
    this.#setState("reconnecting", `retrying in ${(delayMs / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.#connect(), delayMs);
  }

  #setState(state, detail) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, detail } }));
  }

  #loadOffsets() {
    try {
      return JSON.parse(sessionStorage.getItem(this.storageKey) ?? "{}");
    } catch {
      return {};
    }
  }

  #saveOffsets() {
    sessionStorage.setItem(this.storageKey, JSON.stringify(this.offsets));
  }
}

/** The notifier's URL: as configured, else the page's host on port 8001. */
export function notifierUrl(configured) {
  if (configured) return configured;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.hostname}:8001/ws`;
}
