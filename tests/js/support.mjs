// What the Node tests of rawws.js share: the server they were given, accounts on it, clients, waits.
//
// The pytest driver (tests/js/test_node_client.py) starts a real `rawws serve` and passes its
// address in RAWWS_URL (and a second one with short-lived access tokens in RAWWS_SHORT_TOKENS_URL).

import { RawwsClient } from "../../rawws/chat/static/rawws.js";

export const URL_ = process.env.RAWWS_URL;
export const SHORT_TOKENS_URL = process.env.RAWWS_SHORT_TOKENS_URL;
export const PASSWORD = "correct horse battery staple";
export const TIMEOUT_MS = 20000; // the longest any single wait may take

if (!URL_) throw new Error("RAWWS_URL is not set: run these through tests/js/test_node_client.py");

let userSeq = 0;

/** A new account on `url` (a name of its own per test run), and its name. */
export async function register(url = URL_, prefix = "js") {
  const name = `${prefix}${process.pid % 10000}x${++userSeq}${Math.random().toString(36).slice(2, 6)}`;
  const response = await fetch(new URL("/auth/register", url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: name, password: PASSWORD }),
  });
  if (response.status !== 201) throw new Error(`register ${name}: HTTP ${response.status} ${await response.text()}`);
  return name;
}

/** A network that can be taken away: fetch fails as it does offline, until `offline` is false again. */
export function switchableFetch() {
  const net = { offline: false };
  net.fetch = (...args) => (net.offline ? Promise.reject(new TypeError("fetch failed (offline)")) : fetch(...args));
  return net;
}

/** A signed-in client (token mode) on `url` over `transports`, not connected yet. */
export async function signedIn(user, { url = URL_, transports, ...options } = {}) {
  const client = new RawwsClient({
    url,
    auth: "token",
    transports,
    WebSocket: globalThis.WebSocket,
    backoffBaseMs: 200,
    backoffCapMs: 1000,
    ...options,
  });
  await client.login(user, PASSWORD);
  return client;
}

/** Resolve with the first `type` event `test(value)` accepts; reject after TIMEOUT_MS. */
export function next(client, type, test = () => true, what = type) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${what} within ${TIMEOUT_MS} ms`));
    }, TIMEOUT_MS);
    const off = client.on(type, (value) => {
      if (!test(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

/** Connect and wait until online (the welcome came). */
export async function online(client) {
  const welcome = next(client, "welcome");
  client.connect();
  await welcome;
}

/** Wait until `predicate()` holds, checking as events come and every 20 ms. */
export async function until(predicate, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Every `message` frame a client is passed, per room, in arrival order. */
export function recordMessages(client) {
  const seen = new Map();
  client.on("message", (frame) => {
    if (!seen.has(frame.room)) seen.set(frame.room, []);
    seen.get(frame.room).push(frame);
  });
  return (room) => seen.get(room) || [];
}

export function roomName(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
