// rawws.js: the rawws chat client, for browsers and Node 20. An ES module, no build step, no dependency.
//
// One `RawwsClient` is one member of the chat (docs/protocol.md) over whichever transport gets
// through (docs/transports.md): a WebSocket on /ws, else Server-Sent Events on /sse with commands by
// POST /send, else long-polling on /poll with the same POST /send. Why each piece is here:
//
// * Transports are tried in the order of the `transports` option. One that cannot carry the chat
//   where this client is (an upgrade refused, a socket that dies within `fallbackAfterMs` of opening,
//   a stream that says nothing, e.g. behind a buffering proxy) is skipped for `demoteForMs` and the
//   next one is tried at once. A server that cannot be reached is no reason to change transport:
//   that is retried with capped exponential backoff and jitter.
// * SSE is read from a `fetch` body by this module, not by `EventSource`: Node 20 has none, and
//   `EventSource` can send neither `Authorization` nor a `Last-Event-ID` of our choosing.
// * The client keeps, per room it is in, the last id it was given (messages and membership events
//   take ids from one counter). A reconnection resumes from there: over a WebSocket each room is
//   joined again with `since`; over SSE and long-polling the same position goes in `Last-Event-ID`
//   (`room:id,room:id`) and the server joins them again. Frames with an id at or below the last one
//   a room had are dropped, so a resume never shows a message twice.
// * Credentials: `auth: "cookie"` (the browser page: the refresh token is an HttpOnly cookie the
//   script never sees) or `auth: "token"` (scripts, Node: the refresh token is kept in memory). The
//   access token is renewed before it expires; it goes in an `Authorization` header, never in a URL
//   (a WebSocket gets a single-use ticket for its URL instead).
// * `say` (and `request`) return a promise: the answer carrying its `ref` resolves it, an `error`
//   with that `ref` rejects it, and so do a timeout and a dropped connection.

const TRANSPORTS = ["websocket", "sse", "poll"];
const MAX_COMMANDS_PER_SEND = 32; // docs/transports.md, POST /send
const POLL_WAIT_S = 25; // the longest a long-poll waits (docs/transports.md)
const SUBPROTOCOL = "rawws.v1";
// Frames whose `id` is a place in their room's sequence (docs/protocol.md): they move the position.
const SEQUENCED = new Set(["message", "member", "edited", "deleted"]);

const DEFAULTS = {
  transports: TRANSPORTS,
  auth: "token",
  ackTimeoutMs: 15000,
  fallbackAfterMs: 3000, // a socket that dies this soon after opening is not getting through
  sessionTimeoutMs: 5000, // nor a stream (or a socket) that has not said `session` (`welcome`) within this
  demoteForMs: 5 * 60 * 1000, // how long a transport that did not get through is skipped
  backoffBaseMs: 500,
  backoffCapMs: 30000,
  stableAfterMs: 10000, // a connection that lasted this long resets the backoff
  refreshMarginMs: 60000, // renew the access token when it has less than this left
  lockName: "rawws.refresh", // the Web Lock cookie sessions renew under (tabs share the cookie)
};

/** An error a promise of this module is rejected with: `code` is the server's or one of ours. */
export class RawwsError extends Error {
  constructor(code, message, frame = null) {
    super(message || code);
    this.name = "RawwsError";
    this.code = code;
    this.frame = frame;
  }
}

/** The position header's text: `room:id` for every room with an id, in join order (docs/transports.md). */
export function formatPosition(rooms) {
  const parts = [];
  for (const [name, id] of rooms) if (Number.isSafeInteger(id)) parts.push(`${name}:${id}`);
  return parts.join(",");
}

/**
 * An SSE parser (the HTML living standard's "event stream interpretation"): feed it text as it
 * arrives, it calls `onEvent({data, id, event})` per dispatched event and `onComment(text)` per
 * comment line. Lines may end in CRLF, LF or CR, split anywhere between chunks.
 */
export class SseParser {
  constructor(onEvent, onComment = () => {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.buffer = "";
    this.data = [];
    this.event = "";
    this.lastEventId = "";
    this.retry = null;
    this.pendingCr = false;
  }

  feed(text) {
    let chunk = text;
    if (this.pendingCr && chunk.startsWith("\n")) chunk = chunk.slice(1); // the LF of a CRLF split in two
    this.pendingCr = false;
    this.buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      if (match[0] === "\r" && match.index === this.buffer.length - 1) {
        this.pendingCr = true; // maybe a CRLF whose LF comes next
      }
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) {
      this.onComment(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch() {
    if (this.data.length === 0) {
      this.event = "";
      return;
    }
    const event = { data: this.data.join("\n"), id: this.lastEventId, event: this.event || "message" };
    this.data = [];
    this.event = "";
    this.onEvent(event);
  }
}

class Room {
  constructor(name) {
    this.name = name;
    this.lastId = null; // the last id delivered in this room; null: none yet (a first join sets it)
    this.joined = false; // `joined` came on the current connection
    this.joinSentOn = 0; // the connection a join (or the position's resume) went out on
  }
}

/**
 * The chat client. Events (`on(type, listener)`, returns a function that unsubscribes):
 * every server frame by its `type` and as `frame`; `status` ({status, attempt, retryAt}),
 * `transport` ({transport, previous}), `disconnect` ({code, reason, transport}), `token`
 * ({accessToken, expiresIn, user}) and `unauthorized` ({reason}: the credential is refused and
 * cannot be renewed; the client stopped).
 */
export class RawwsClient {
  constructor(options = {}) {
    const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
    this.options = { ...DEFAULTS, ...given };
    const order = this.options.transports.filter((name) => TRANSPORTS.includes(name));
    if (order.length === 0) throw new RawwsError("bad_option", "transports: none of websocket, sse, poll");
    this.order = order;
    const base = options.url || (globalThis.location ? globalThis.location.origin : null);
    if (!base) throw new RawwsError("bad_option", "url: the server's http(s) address is required outside a browser");
    this.base = new URL(base);
    this.fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this.WebSocket = options.WebSocket === undefined ? globalThis.WebSocket : options.WebSocket;
    this.listeners = new Map();
    this.rooms = new Map(); // name -> Room, in join order
    this.pending = new Map(); // ref -> {resolve, reject, timer, conn}
    this.joinWaits = new Map(); // room -> [{resolve, reject}]
    this.accessToken = options.token || null;
    this.refreshToken = options.refreshToken || null;
    this.user = null;
    this.expiresAt = 0;
    this.renewable = Boolean(this.refreshToken) || this.options.auth === "cookie";
    this.refreshTimer = null;
    this.refreshing = null;
    this.status = "idle";
    this.transport = null;
    this.conn = null; // the connection in use: {seq, kind, send, close, online, ...}
    this.connSeq = 0;
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = 0;
    this.demoted = new Map(); // transport -> until when (ms) it is skipped
    this.tried = []; // transports tried since the last backoff
    this.refSeq = 0;
    this.stopped = false;
    if (options.expiresIn) this.setExpiry(Number(options.expiresIn));
  }

  // -- events -----------------------------------------------------------------------

  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }

  emit(type, value) {
    for (const listener of [...(this.listeners.get(type) || [])]) {
      try {
        listener(value);
      } catch (error) {
        setTimeout(() => {
          throw error; // a subscriber's bug is reported, and stops neither the others nor the client
        });
      }
    }
  }

  // -- accounts: login, renewal, logout ---------------------------------------------

  url(path) {
    return new URL(path, this.base).href;
  }

  async postJson(path, body, { cookie = false, bearer = false } = {}) {
    const headers = { "Content-Type": "application/json" };
    if (cookie) headers["X-Rawws-Session"] = "cookie";
    if (bearer) headers.Authorization = `Bearer ${this.accessToken}`;
    const response = await this.fetch(this.url(path), {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: cookie ? "same-origin" : "omit",
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      // an empty or non-JSON answer
    }
    return { response, payload };
  }

  /** POST /auth/login. Resolves the token answer; rejects with a RawwsError (`status`: the HTTP status). */
  async login(username, password) {
    const cookie = this.options.auth === "cookie";
    const body = cookie ? { username, password, session: "cookie" } : { username, password };
    const { response, payload } = await this.postJson("/auth/login", body, { cookie });
    if (response.ok && payload && typeof payload.access_token === "string") {
      this.stopped = false;
      this.keepTokens(payload);
      return payload;
    }
    const message = payload && payload.error && typeof payload.error.message === "string" ? payload.error.message : "";
    const error = new RawwsError("login_failed", message || `login: HTTP ${response.status}`);
    error.status = response.status;
    error.serverMessage = message;
    error.retryAfter = Number(response.headers.get("Retry-After")) || null;
    throw error;
  }

  /** Use tokens from elsewhere (a stored access token, a cookie sign-in's answer). */
  useTokens(payload) {
    this.stopped = false;
    this.keepTokens(payload, { emit: false });
  }

  keepTokens(payload, { emit = true } = {}) {
    this.accessToken = payload.access_token;
    if (typeof payload.refresh_token === "string") this.refreshToken = payload.refresh_token;
    if (typeof payload.user === "string") this.user = payload.user;
    this.renewable = this.options.auth === "cookie" || Boolean(this.refreshToken);
    this.setExpiry(Number(payload.expires_in));
    if (emit) this.emit("token", { accessToken: this.accessToken, expiresIn: Number(payload.expires_in), user: this.user });
  }

  setExpiry(seconds) {
    this.expiresAt = Number.isFinite(seconds) && seconds > 0 ? Date.now() + seconds * 1000 : 0;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (!this.renewable || !this.expiresAt || this.stopped) return;
    const lifetime = this.expiresAt - Date.now();
    const delay = Math.max(0, lifetime - Math.min(this.options.refreshMarginMs, lifetime / 3));
    this.refreshTimer = setTimeout(() => this.renew().catch(() => {}), delay);
  }

  /** The expiry of the access token, in ms since the epoch (0: unknown). */
  get tokenExpiresAt() {
    return this.expiresAt;
  }

  /**
   * Trade the refresh token (or cookie) for a new access token. true: renewed; false: refused
   * (the login is over). A network or server error throws, and a renewal is tried again later.
   */
  renew() {
    if (this.refreshing) return this.refreshing;
    if (!this.renewable || this.stopped) return Promise.resolve(false);
    this.refreshing = (async () => {
      try {
        const cookie = this.options.auth === "cookie";
        const call = () => this.postJson("/auth/refresh", cookie ? {} : { refresh_token: this.refreshToken }, { cookie });
        const locks = cookie && globalThis.navigator && globalThis.navigator.locks;
        const { response, payload } = locks && locks.request ? await locks.request(this.options.lockName, call) : await call();
        if (this.stopped) return false;
        if (response.ok && payload && typeof payload.access_token === "string") {
          this.keepTokens(payload);
          return true;
        }
        if (response.status === 401 || response.status === 400 || response.status === 403) {
          this.renewable = false;
          return false;
        }
        this.refreshTimer = setTimeout(() => this.renew().catch(() => {}), 5000 + Math.random() * 5000);
        throw new RawwsError("refresh_failed", `refresh: HTTP ${response.status}`);
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** POST /auth/logout (this login's refresh token or cookie), then stop. */
  async logout() {
    const cookie = this.options.auth === "cookie";
    const renewable = this.renewable;
    const token = this.refreshToken;
    this.close();
    if (!renewable) return;
    await this.postJson("/auth/logout", cookie ? {} : { refresh_token: token }, { cookie }).catch(() => {});
  }

  // -- rooms, commands -----------------------------------------------------------------

  /** Every room this client is in (or on its way into), with the last id it was given there. */
  get position() {
    return formatPosition([...this.rooms.values()].map((room) => [room.name, room.lastId]));
  }

  lastId(room) {
    const known = this.rooms.get(room);
    return known ? known.lastId : null;
  }

  /**
   * Join `room` (ref `join:<room>`), now or as soon as connected; kept joined across reconnections.
   * Resolves with the `joined` frame, rejects with the `error` that refused it.
   */
  join(room) {
    let known = this.rooms.get(room);
    if (!known) {
      known = new Room(room);
      this.rooms.set(room, known);
    }
    const wait = new Promise((resolve, reject) => {
      if (!this.joinWaits.has(room)) this.joinWaits.set(room, []);
      this.joinWaits.get(room).push({ resolve, reject });
    });
    wait.catch(() => {}); // whoever ignores it is not told of an unhandled rejection
    if (this.online && known.joinSentOn !== this.conn.seq) this.sendJoin(known);
    return wait;
  }

  sendJoin(room) {
    const frame = { type: "join", room: room.name, ref: `join:${room.name}` };
    if (room.lastId !== null) frame.since = room.lastId;
    room.joinSentOn = this.conn.seq;
    this.conn.send(frame);
  }

  /**
   * Leave `room` (false when not connected). A plain leave takes it off this client at once; one
   * `forGood` (ref `part:<room>`: it ends the membership) once the server's `left` says it is done.
   */
  leave(room, { forGood = false } = {}) {
    if (forGood) return this.send({ type: "leave", room, for_good: true, ref: `part:${room}` });
    this.forget(room);
    return this.send({ type: "leave", room });
  }

  /** Take `room` off this client without a word to the server: it is not joined again. */
  forget(room, why = new RawwsError("left", `left ${room}`)) {
    this.rooms.delete(room);
    for (const wait of this.joinWaits.get(room) || []) wait.reject(why);
    this.joinWaits.delete(room);
  }

  /** Send a frame as is; false when not connected (nothing is queued). */
  send(frame) {
    if (!this.online) return false;
    this.conn.send(frame);
    return true;
  }

  /** Say `text` in `room`: resolves with the `ack` (its `id`), rejects with the `error`, a timeout or a drop. */
  say(room, text, { ref, timeoutMs } = {}) {
    return this.request({ type: "say", room, text, ref: ref || this.newRef() }, { timeoutMs });
  }

  /** Send `frame` (its `ref`, or a new one) and wait for the answer carrying that ref. */
  request(frame, { timeoutMs = this.options.ackTimeoutMs } = {}) {
    const ref = frame.ref || this.newRef();
    const sent = { ...frame, ref };
    if (!this.online) return Promise.reject(new RawwsError("offline", "not connected"));
    if (this.pending.has(ref)) return Promise.reject(new RawwsError("bad_ref", `ref ${ref} is already waiting`));
    const promise = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RawwsError("timeout", `no answer to ${ref} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer, conn: this.conn.seq });
    });
    this.conn.send(sent);
    return promise;
  }

  newRef() {
    return `c${++this.refSeq}-${Math.random().toString(36).slice(2, 8)}`;
  }

  settle(ref, error, frame) {
    const waiting = this.pending.get(ref);
    if (!waiting) return;
    this.pending.delete(ref);
    clearTimeout(waiting.timer);
    if (error) waiting.reject(error);
    else waiting.resolve(frame);
  }

  rejectPending(code, message) {
    for (const ref of [...this.pending.keys()]) this.settle(ref, new RawwsError(code, message));
  }

  // -- the connection ----------------------------------------------------------------

  get online() {
    return Boolean(this.conn && this.conn.online);
  }

  /** Connect (and stay connected, reconnecting as needed, until `close`). */
  connect() {
    this.stopped = false;
    if (this.conn || this.status === "connecting") return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  /** Try again now instead of at the end of the backoff. */
  reconnectNow() {
    if (this.stopped || this.conn || this.status === "connecting") return;
    this.attempt = Math.min(this.attempt, 5);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  /** Stop: the connection ends, nothing is retried, the renewal timer stops. */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    this.retryTimer = null;
    this.refreshTimer = null;
    this.renewable = false;
    const conn = this.conn;
    this.conn = null;
    this.connSeq++;
    if (conn) conn.close();
    this.rejectPending("closed", "the client was closed");
    this.setStatus("closed");
  }

  setStatus(status) {
    this.status = status;
    this.emit("status", { status, attempt: this.attempt, retryAt: this.retryAt, transport: this.transport });
  }

  setTransport(name) {
    if (name === this.transport) return;
    const previous = this.transport;
    this.transport = name;
    this.emit("transport", { transport: name, previous });
  }

  nextTransport() {
    const now = Date.now();
    for (const name of this.order) {
      if (this.tried.includes(name)) continue;
      if ((this.demoted.get(name) || 0) > now) continue;
      if (name === "websocket" && !this.WebSocket) continue;
      return name;
    }
    return null;
  }

  async open() {
    if (this.stopped) return;
    let kind = this.nextTransport();
    if (!kind && this.tried.length === 0) {
      this.demoted.clear(); // every one was skipped: try them all again
      kind = this.nextTransport();
    }
    if (!kind) {
      this.backoff();
      return;
    }
    this.tried.push(kind);
    const seq = ++this.connSeq;
    this.setStatus("connecting");
    try {
      if (this.renewable && this.expiresAt && Date.now() >= this.expiresAt - this.options.refreshMarginMs) {
        await this.renew().catch(() => false); // about to expire: renew first (a refusal shows as a 401 below)
        if (seq !== this.connSeq) return;
      }
      const open = { websocket: this.openWebSocket, sse: this.openSse, poll: this.openPoll }[kind];
      await open.call(this, seq);
    } catch (error) {
      if (seq !== this.connSeq) return;
      this.conn = null;
      this.failed(kind, error);
    }
  }

  // What to do when opening a connection failed: another transport, a renewal, or a pause.
  failed(kind, error) {
    if (this.stopped) return;
    const code = error && error.code;
    if (code === "unauthorized") {
      this.stop("unauthorized");
      return;
    }
    if (code === "transport") {
      this.demoted.set(kind, Date.now() + this.options.demoteForMs);
      this.open();
      return;
    }
    this.backoff(); // the server is unreachable, busy (429) or failing: the same transport, later
  }

  stop(reason) {
    this.close();
    this.emit("unauthorized", { reason });
  }

  backoff() {
    if (this.stopped) return;
    this.tried = [];
    const ceiling = Math.min(this.options.backoffCapMs, this.options.backoffBaseMs * 2 ** Math.min(this.attempt, 16));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter": spread, never zero
    this.attempt++;
    this.retryAt = Date.now() + delay;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
    this.setStatus("waiting");
  }

  // A 401 where a credential was presented: renew and try once more, or stop.
  async authorized(attempt) {
    let response = await attempt();
    if (response.status !== 401) return response;
    // A renewal that fails on the network throws: the server is unreachable, which is no sign-out.
    if (!(await this.renew())) throw new RawwsError("unauthorized", "the credential was refused");
    response = await attempt();
    if (response.status === 401) throw new RawwsError("unauthorized", "the credential was refused");
    return response;
  }

  bearer(extra = {}) {
    return { Authorization: `Bearer ${this.accessToken}`, ...extra };
  }

  // A connection is online once its `welcome` came: rooms are joined again, waiters told.
  onWelcome(conn) {
    conn.online = true;
    conn.openedAt = Date.now();
    this.tried = [];
    this.setTransport(conn.kind);
    this.setStatus("online");
    for (const room of this.rooms.values()) {
      room.joined = false;
      if (conn.resumed.has(room.name) && !conn.positionRefused) room.joinSentOn = conn.seq;
      else this.sendJoin(room);
    }
  }

  // Every frame from the server, whatever carried it.
  onFrame(conn, frame) {
    if (conn !== this.conn || !frame || typeof frame.type !== "string") return;
    const room = typeof frame.room === "string" ? this.rooms.get(frame.room) : undefined;
    if (room && SEQUENCED.has(frame.type) && Number.isSafeInteger(frame.id)) {
      if (room.lastId !== null && frame.id <= room.lastId) return; // had it: a resume's overlap
      room.lastId = frame.id;
    }
    switch (frame.type) {
      case "session":
        return;
      case "closed": // the server ended the session (SSE, long-polling): told, then reconnected
        this.emit("closed", frame);
        this.emit("frame", frame);
        conn.end(Number(frame.code) || 1000, typeof frame.reason === "string" ? frame.reason : "");
        return;
      case "welcome":
        if (typeof frame.user === "string") this.user = frame.user;
        this.onWelcome(conn);
        break;
      case "joined":
        if (room) {
          room.joined = true;
          if ((room.lastId === null || conn.ahead) && Number.isSafeInteger(frame.last_id)) room.lastId = frame.last_id;
          conn.ahead = false;
          for (const wait of this.joinWaits.get(room.name) || []) wait.resolve(frame);
          this.joinWaits.delete(room.name);
        }
        break;
      case "left": // a leave for good is done (a plain leave's answer has no id: forgotten already)
        if (frame.id !== undefined) this.forget(frame.room);
        break;
      case "removed": // out of the room (a deleted room starts again from id 1: nothing of it is kept)
        this.forget(frame.room, new RawwsError("removed", `removed from ${frame.room}`, frame));
        break;
      case "error":
        this.onError(conn, frame);
        break;
      default:
        break;
    }
    if (typeof frame.ref === "string" && frame.type !== "error") this.settle(frame.ref, null, frame);
    this.emit(frame.type, frame);
    this.emit("frame", frame);
  }

  onError(conn, frame) {
    const ref = typeof frame.ref === "string" ? frame.ref : null;
    const error = new RawwsError(frame.code || "error", frame.message, frame);
    if (frame.code === "bad_position") conn.positionRefused = true;
    // Our id of a room is past its newest (it was deleted and made again): the `joined` that comes
    // right after says where it starts now (docs/transports.md).
    if (frame.code === "position_ahead") conn.ahead = true;
    if (ref && ref.startsWith("join:")) {
      const name = ref.slice(5);
      const room = this.rooms.get(name);
      if (room && !room.joined) {
        room.joinSentOn = 0;
        if (frame.code === "rate_limited") {
          for (const wait of this.joinWaits.get(name) || []) wait.reject(error);
          this.joinWaits.delete(name);
        } else {
          this.forget(name, error);
        }
      }
    }
    if (ref) this.settle(ref, error);
    else if (frame.code === "rate_limited") {
      // Over the frame rate the server drops frames unread and says so once: whatever waits may be lost.
      this.rejectPending("rate_limited", frame.message);
      for (const room of this.rooms.values()) if (!room.joined) room.joinSentOn = 0;
    }
  }

  // A connection that was opened ended (online or not). Whether to fall back is the caller's to say.
  onEnd(conn, code, reason, { fallback = false } = {}) {
    if (conn !== this.conn) return;
    const wasOnline = conn.online;
    conn.online = false;
    this.conn = null;
    for (const room of this.rooms.values()) {
      room.joined = false;
      room.joinSentOn = 0;
    }
    this.rejectPending("disconnected", "the connection dropped");
    if (wasOnline) {
      if (Date.now() - conn.openedAt > this.options.stableAfterMs) this.attempt = 0;
      this.emit("disconnect", { code, reason, transport: conn.kind });
    }
    if (this.stopped) return;
    if (fallback) {
      this.demoted.set(conn.kind, Date.now() + this.options.demoteForMs);
      this.open();
    } else {
      this.backoff();
    }
  }

  newConn(seq, kind) {
    const conn = {
      seq,
      kind,
      online: false,
      openedAt: 0,
      resumed: new Set(), // rooms the position asked the server to join again
      positionRefused: false,
      ahead: false, // a position_ahead came: the next `joined` resets its room's id
      send: () => {},
      close: () => {},
      end: (code, reason) => {
        conn.close();
        this.onEnd(conn, code, reason);
      },
    };
    this.conn = conn;
    return conn;
  }

  // -- WebSocket: a ticket, then /ws?ticket=… offering rawws.v1 ------------------------------

  async openWebSocket(seq) {
    const response = await this.authorized(() =>
      this.fetch(this.url("/auth/ticket"), {
        method: "POST",
        headers: this.bearer(),
        cache: "no-store",
        credentials: "omit",
      }),
    );
    if (seq !== this.connSeq) return;
    if (!response.ok) throw new RawwsError("unavailable", `ticket: HTTP ${response.status}`);
    const { ticket } = await response.json();
    if (typeof ticket !== "string") throw new RawwsError("unavailable", "ticket: bad answer");
    if (seq !== this.connSeq) return;
    const target = new URL(this.options.webSocketUrl || this.url("/ws"));
    if (!this.options.webSocketUrl) target.protocol = this.base.protocol === "https:" ? "wss:" : "ws:";
    target.searchParams.set("ticket", ticket);
    let ws;
    try {
      ws = new this.WebSocket(target.href, [SUBPROTOCOL]);
    } catch (error) {
      throw new RawwsError("transport", `WebSocket: ${error && error.message}`);
    }
    const conn = this.newConn(seq, "websocket");
    let opened = 0;
    let welcomed = false;
    const quiet = setTimeout(() => {
      if (!welcomed) {
        // No welcome: the upgrade hangs, or something between us passes nothing.
        conn.close();
        this.onEnd(conn, 1006, "no welcome", { fallback: true });
      }
    }, this.options.sessionTimeoutMs);
    conn.send = (frame) => {
      if (ws.readyState === 1) ws.send(JSON.stringify(frame));
    };
    conn.close = () => {
      clearTimeout(quiet);
      try {
        ws.close(1000, "bye");
      } catch (_) {
        // closing already
      }
    };
    ws.addEventListener("open", () => {
      opened = Date.now();
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (frame && frame.type === "welcome") {
        welcomed = true;
        clearTimeout(quiet);
      }
      this.onFrame(conn, frame);
    });
    ws.addEventListener("close", (event) => {
      clearTimeout(quiet);
      // Never opened, or gone soon after without a close of the server's: it does not get through.
      const abnormal = event.code === 1006 || event.code === 1005 || event.code === 1015;
      const early = !opened || (abnormal && Date.now() - opened < this.options.fallbackAfterMs);
      this.onEnd(conn, event.code, event.reason, { fallback: early || !welcomed });
    });
  }

  // -- Server-Sent Events: GET /sse, commands by POST /send ------------------------------

  positionHeaders(conn) {
    const position = this.position;
    for (const room of this.rooms.values()) if (room.lastId !== null) conn.resumed.add(room.name);
    return position ? { "Last-Event-ID": position } : {};
  }

  async openSse(seq) {
    const conn = this.newConn(seq, "sse");
    this.conn = null; // not in use until the stream answers
    const abort = new AbortController();
    let sessionSeen = false;
    const silent = setTimeout(() => abort.abort(), this.options.sessionTimeoutMs);
    let response;
    try {
      response = await this.authorized(() =>
        this.fetch(this.url("/sse"), {
          headers: this.bearer({ Accept: "text/event-stream", ...this.positionHeaders(conn) }),
          cache: "no-store",
          credentials: "omit",
          signal: abort.signal,
        }),
      );
    } catch (error) {
      clearTimeout(silent);
      if (abort.signal.aborted) throw new RawwsError("transport", "SSE: no answer");
      throw error;
    }
    if (seq !== this.connSeq) {
      abort.abort();
      return;
    }
    this.checkStatus(response, "SSE");
    if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream") || !response.body) {
      abort.abort();
      throw new RawwsError("transport", "SSE: not an event stream");
    }
    this.conn = conn;
    let liveness = null;
    const alive = (seconds) => {
      clearTimeout(liveness);
      if (seconds) liveness = setTimeout(() => abort.abort(), (seconds * 2 + 5) * 1000);
    };
    conn.heartbeat = 0;
    conn.close = () => {
      clearTimeout(silent);
      clearTimeout(liveness);
      abort.abort();
    };
    conn.send = this.sender(conn);
    const parser = new SseParser(
      (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        if (frame && frame.type === "session" && !sessionSeen) {
          sessionSeen = true;
          clearTimeout(silent);
          conn.session = frame.session;
          conn.heartbeat = Number(frame.heartbeat) || 0;
        }
        alive(conn.heartbeat);
        this.onFrame(conn, frame);
      },
      () => alive(conn.heartbeat),
    );
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
        if (this.conn !== conn) break;
      }
    } catch (_) {
      // aborted, or the stream broke: ended below
    } finally {
      clearTimeout(silent);
      clearTimeout(liveness);
      abort.abort();
    }
    if (this.conn === conn) this.onEnd(conn, 1006, "stream ended", { fallback: !sessionSeen });
  }

  // A refusal that is about us (401: handled before), the server (5xx, 429) or this transport (the rest).
  checkStatus(response, what) {
    if (response.ok) return;
    if (response.status === 401) throw new RawwsError("unauthorized", `${what}: 401`);
    if (response.status === 429 || response.status === 403 || response.status >= 500) {
      throw new RawwsError("unavailable", `${what}: HTTP ${response.status}`);
    }
    throw new RawwsError("transport", `${what}: HTTP ${response.status}`);
  }

  // Commands for an SSE or long-poll session: in order, at most one POST /send at a time.
  sender(conn) {
    const queue = [];
    let sending = false;
    const flush = async () => {
      if (sending) return;
      sending = true;
      try {
        while (queue.length && this.conn === conn) {
          const commands = queue.splice(0, MAX_COMMANDS_PER_SEND);
          let response;
          try {
            response = await this.authorized(() =>
              this.fetch(this.url("/send"), {
                method: "POST",
                headers: this.bearer({ "Content-Type": "application/json" }),
                body: JSON.stringify({ session: conn.session, commands }),
                cache: "no-store",
                credentials: "omit",
              }),
            );
          } catch (error) {
            if (error && error.code === "unauthorized") {
              this.stop("unauthorized");
              return;
            }
            response = null;
          }
          if (this.conn !== conn) return;
          if (response && response.status === 404) {
            conn.end(1006, "no such session"); // the session is gone: a new one, with the position
            return;
          }
          if (!response || !response.ok) {
            const code = response ? `http_${response.status}` : "disconnected";
            for (const command of commands) {
              if (typeof command.ref === "string") this.settle(command.ref, new RawwsError(code, "not sent"));
            }
          }
        }
      } finally {
        sending = false;
      }
    };
    return (frame) => {
      queue.push(frame);
      queueMicrotask(flush); // what is sent in one turn goes in one POST
    };
  }

  // -- long-polling: GET /poll, commands by POST /send ---------------------------------------

  async openPoll(seq) {
    const conn = this.newConn(seq, "poll");
    this.conn = null;
    const first = await this.authorized(() =>
      this.fetch(this.url("/poll"), {
        headers: this.bearer(this.positionHeaders(conn)),
        cache: "no-store",
        credentials: "omit",
      }),
    );
    if (seq !== this.connSeq) return;
    this.checkStatus(first, "poll");
    let answer = await first.json().catch(() => null);
    if (!answer || typeof answer.session !== "string") throw new RawwsError("transport", "poll: bad answer");
    this.conn = conn;
    conn.session = answer.session;
    const abort = new AbortController();
    conn.close = () => abort.abort();
    conn.send = this.sender(conn);
    let cursor = 0;
    for (;;) {
      for (const frame of Array.isArray(answer.events) ? answer.events : []) {
        if (this.conn !== conn) return;
        this.onFrame(conn, frame);
      }
      if (this.conn !== conn) return;
      if (Number.isSafeInteger(answer.cursor)) cursor = answer.cursor;
      const target = new URL(this.url("/poll"));
      target.searchParams.set("session", conn.session);
      target.searchParams.set("ack", String(cursor));
      target.searchParams.set("wait", String(POLL_WAIT_S));
      const timer = setTimeout(() => abort.abort(), (POLL_WAIT_S + 15) * 1000);
      let response;
      try {
        response = await this.authorized(() =>
          this.fetch(target.href, { headers: this.bearer(), cache: "no-store", credentials: "omit", signal: abort.signal }),
        );
        answer = response.ok ? await response.json() : null;
      } catch (error) {
        clearTimeout(timer);
        if (this.conn !== conn) return;
        if (error && error.code === "unauthorized") {
          this.stop("unauthorized");
          return;
        }
        this.onEnd(conn, 1006, "poll failed");
        return;
      }
      clearTimeout(timer);
      if (this.conn !== conn) return;
      if (!answer) {
        this.onEnd(conn, 1006, `poll: HTTP ${response.status}`); // 404: the session ended
        return;
      }
    }
  }
}
