// Types of rawws.js, the rawws chat client (docs/transports.md, docs/protocol.md).

export type Transport = "websocket" | "sse" | "poll";
export type Status = "idle" | "connecting" | "online" | "waiting" | "closed";

/** One JSON object of the chat protocol: `type` names it; a client ignores fields it does not know. */
export interface Frame {
  type: string;
  room?: string;
  id?: number;
  ref?: string;
  [field: string]: unknown;
}

export interface Ack extends Frame {
  type: "ack";
  ref: string;
  room: string;
  id: number;
}

/** The answer of POST /auth/login and /auth/refresh. */
export interface TokenAnswer {
  access_token: string;
  refresh_token?: string; // absent in cookie mode: the refresh token is an HttpOnly cookie
  token_type?: string;
  expires_in: number;
  refresh_expires_in?: number;
  user?: string;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export interface ClientOptions {
  /** The server's http(s) address; in a browser, the page's origin by default. */
  url?: string;
  /** "cookie": the page's session (refresh token in an HttpOnly cookie); "token" (default): kept in memory. */
  auth?: "cookie" | "token";
  /** An access token (and refresh token) from elsewhere. */
  token?: string;
  refreshToken?: string;
  expiresIn?: number;
  /** The transports to try, in order (default: websocket, sse, poll). */
  transports?: Transport[];
  /** A WebSocket class (the global one by default; null: none, go straight to SSE). */
  WebSocket?: (new (url: string, protocols?: string[]) => WebSocketLike) | null;
  /** The WebSocket's address instead of <url>/ws (a ticket is added to it). */
  webSocketUrl?: string;
  fetch?: typeof fetch;
  /** How long `say` and `request` wait for their answer (default 15 s). */
  ackTimeoutMs?: number;
  /** A socket that dies this soon after opening does not get through (default 3 s). */
  fallbackAfterMs?: number;
  /** A stream without `session` (a socket without `welcome`) this long does not get through (default 5 s). */
  sessionTimeoutMs?: number;
  /** How long a transport that did not get through is skipped (default 5 min). */
  demoteForMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  stableAfterMs?: number;
  /** Renew the access token when it has less than this left (default 60 s; a third of a shorter life). */
  refreshMarginMs?: number;
  /** The Web Lock cookie sessions renew under (tabs share the cookie). */
  lockName?: string;
}

export interface ClientEvents {
  frame: Frame;
  status: { status: Status; attempt: number; retryAt: number; transport: Transport | null };
  transport: { transport: Transport; previous: Transport | null };
  disconnect: { code: number; reason: string; transport: Transport };
  token: { accessToken: string; expiresIn: number; user: string | null };
  unauthorized: { reason: string };
  [frameType: string]: any;
}

export class RawwsError extends Error {
  constructor(code: string, message?: string, frame?: Frame | null);
  /** The server's error code (`not_joined`, `rate_limited`, ...) or the client's: `timeout`,
   * `disconnected`, `offline`, `closed`, `login_failed`, `unauthorized`, `transport`, `unavailable`. */
  code: string;
  frame: Frame | null;
  status?: number;
  retryAfter?: number | null;
  serverMessage?: string;
}

export class RawwsClient {
  constructor(options?: ClientOptions);
  readonly transport: Transport | null;
  readonly status: Status;
  readonly online: boolean;
  readonly user: string | null;
  readonly accessToken: string | null;
  readonly tokenExpiresAt: number;
  /** `room:id,room:id`: what a resume sends as Last-Event-ID. */
  readonly position: string;

  on<K extends keyof ClientEvents>(type: K, listener: (value: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (value: ClientEvents[K]) => void): void;

  login(username: string, password: string): Promise<TokenAnswer>;
  useTokens(answer: TokenAnswer): void;
  renew(): Promise<boolean>;
  logout(): Promise<void>;

  connect(): void;
  reconnectNow(): void;
  close(): void;

  join(room: string): Promise<Frame>;
  leave(room: string, options?: { forGood?: boolean }): boolean;
  forget(room: string): void;
  lastId(room: string): number | null;
  send(frame: Frame): boolean;
  say(room: string, text: string, options?: { ref?: string; timeoutMs?: number }): Promise<Ack>;
  request(frame: Frame, options?: { timeoutMs?: number }): Promise<Frame>;
}

export class SseParser {
  constructor(onEvent: (event: { data: string; id: string; event: string }) => void, onComment?: (text: string) => void);
  lastEventId: string;
  retry: number | null;
  feed(text: string): void;
}

export function formatPosition(rooms: Iterable<[string, number | null]>): string;
