// rawws.js against a real `rawws serve`: each transport forced in turn, recovery with `since`,
// acks and their timeouts, the fallback from a WebSocket that does not get through, token renewal.
// Run by tests/js/test_node_client.py (`node --test`), which starts the server.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { RawwsClient, RawwsError } from "../../rawws/chat/static/rawws.js";
import {
  SHORT_TOKENS_URL,
  URL_,
  next,
  online,
  recordMessages,
  register,
  roomName,
  signedIn,
  switchableFetch,
  until,
} from "./support.mjs";

const TRANSPORTS = ["websocket", "sse", "poll"];
const clients = [];

function track(client) {
  clients.push(client);
  return client;
}

after(() => {
  for (const client of clients) client.close();
});

test("Node has what the client needs: fetch, streams, and a WebSocket (node --experimental-websocket)", () => {
  assert.equal(typeof fetch, "function");
  assert.equal(typeof ReadableStream, "function");
  assert.equal(typeof globalThis.WebSocket, "function", "run node with --experimental-websocket (Node 20)");
});

for (const transport of TRANSPORTS) {
  describe(`over ${transport} alone`, () => {
    test("login, join, say: the ack carries the stored id, the other member gets the message", async () => {
      const ada = track(await signedIn(await register(), { transports: [transport] }));
      const bob = track(await signedIn(await register(), { transports: [transport] }));
      const transports = [];
      ada.on("transport", ({ transport: name }) => transports.push(name));
      await online(ada);
      await online(bob);
      assert.equal(ada.transport, transport);
      assert.deepEqual(transports, [transport]);
      const room = roomName("say");
      await ada.join(room);
      await bob.join(room);
      const bobSees = recordMessages(bob);
      const ack = await ada.say(room, `hello over ${transport}`);
      assert.equal(ack.type, "ack");
      assert.equal(ack.room, room);
      assert.ok(Number.isSafeInteger(ack.id));
      await until(() => bobSees(room).some((m) => m.id === ack.id), "bob's copy");
      const [got] = bobSees(room).filter((m) => m.id === ack.id);
      assert.equal(got.text, `hello over ${transport}`);
      assert.equal(got.user, ada.user);
      // The ack comes before the message itself (docs/protocol.md): the sender's own copy moves its position too.
      await until(() => ada.lastId(room) === ack.id, "ada's own copy");
      assert.equal(bob.lastId(room), ack.id);

      // An error with the say's ref rejects it: a room this client is not in.
      await assert.rejects(ada.say(roomName("nowhere"), "lost"), (error) => {
        assert.ok(error instanceof RawwsError);
        assert.equal(error.code, "not_joined");
        return true;
      });
    });

    test("a dropped connection resumes with the position: exactly the missed ids, once each", async () => {
      const net = switchableFetch();
      const ada = track(await signedIn(await register(), { transports: [transport], fetch: net.fetch }));
      const bob = track(await signedIn(await register(), { transports: ["websocket", "sse", "poll"] }));
      await online(ada);
      await online(bob);
      const room = roomName("since");
      await ada.join(room);
      await bob.join(room);
      const adaSees = recordMessages(ada);
      const before = await bob.say(room, "before the drop");
      await until(() => adaSees(room).some((m) => m.id === before.id), "the first message");

      // The network goes; the connection with it. Nothing reaches ada until it comes back.
      const dropped = next(ada, "disconnect");
      net.offline = true;
      ada.conn.close();
      await dropped;
      const missed = [];
      for (let i = 0; i < 3; i++) missed.push((await bob.say(room, `missed ${i}`)).id);
      assert.equal(adaSees(room).length, 1);
      assert.equal(ada.position, `${room}:${before.id}`, "what the resume sends (Last-Event-ID or since)");
      const back = next(ada, "welcome");
      const rejoined = next(ada, "joined", (frame) => frame.room === room, `joined ${room}`);
      net.offline = false;
      await back;
      await rejoined; // the room is joined again, by the position or by a join with since
      await until(() => missed.every((id) => adaSees(room).some((m) => m.id === id)), "the missed messages");
      const after = await bob.say(room, "after the resume");
      await until(() => adaSees(room).some((m) => m.id === after.id), "the live message after the resume");
      const ids = adaSees(room).map((m) => m.id);
      assert.deepEqual(ids, [before.id, ...missed, after.id], "each id once, in order");
      assert.equal(ada.transport, transport);
    });
  });
}

test("an answer that never comes: the request is rejected at its timeout", async () => {
  const ada = track(await signedIn(await register(), { transports: ["sse", "poll", "websocket"] }));
  await online(ada);
  const room = roomName("quiet");
  await ada.join(room);
  // `typing` is never answered (docs/protocol.md): waiting for an answer can only time out.
  await assert.rejects(ada.request({ type: "typing", room }, { timeoutMs: 300 }), (error) => {
    assert.equal(error.code, "timeout");
    return true;
  });
  assert.equal(ada.pending.size, 0);
  // The connection is fine: a say is still acknowledged.
  assert.equal((await ada.say(room, "still here")).type, "ack");
});

describe("fallback", () => {
  test("a WebSocket URL that refuses the upgrade (the server's /sse): the client ends on SSE", async () => {
    const target = new URL("/sse", URL_);
    target.protocol = "ws:";
    const ada = track(await signedIn(await register(), { webSocketUrl: target.href }));
    const seen = [];
    ada.on("transport", ({ transport }) => seen.push(transport));
    await online(ada);
    assert.equal(ada.transport, "sse");
    assert.deepEqual(seen, ["sse"]);
    const room = roomName("fallback");
    await ada.join(room);
    assert.equal((await ada.say(room, "over SSE after all")).type, "ack");
  });

  test("a WebSocket URL on a closed port: the client ends on SSE", async () => {
    const ada = track(await signedIn(await register(), { webSocketUrl: "ws://127.0.0.1:9/ws" }));
    await online(ada);
    assert.equal(ada.transport, "sse");
  });

  test("no WebSocket implementation at all (plain Node 20): SSE", async () => {
    const ada = track(await signedIn(await register(), { WebSocket: null }));
    await online(ada);
    assert.equal(ada.transport, "sse");
  });

  test("neither WebSocket nor SSE gets through: long-polling", async () => {
    const ada = track(await signedIn(await register(), { WebSocket: null, transports: ["websocket", "poll"] }));
    await online(ada);
    assert.equal(ada.transport, "poll");
  });
});

describe("tokens", () => {
  test("the access token is renewed before it expires and the chat goes on", { skip: !SHORT_TOKENS_URL }, async () => {
    const user = await register(SHORT_TOKENS_URL);
    for (const transport of TRANSPORTS) {
      const ada = track(await signedIn(user, { url: SHORT_TOKENS_URL, transports: [transport] }));
      const tokens = [ada.accessToken];
      ada.on("token", ({ accessToken }) => tokens.push(accessToken));
      await online(ada);
      const room = roomName("renew");
      await ada.join(room);
      await until(() => tokens.length >= 3, `two renewals over ${transport}`);
      assert.equal(new Set(tokens).size, tokens.length, "a new token each time");
      // Past the first token's life the client still says things (reconnected with a new one if the server ended it).
      await until(() => ada.online, "online again");
      assert.equal((await ada.say(room, `after two renewals over ${transport}`)).type, "ack");
      ada.close();
    }
  });

  test("a refused login is a RawwsError with the status; a client with no url outside a browser refuses to start", async () => {
    const client = new RawwsClient({ url: URL_ });
    await assert.rejects(client.login("nobody-at-all", "wrong password"), (error) => {
      assert.equal(error.status, 401);
      return true;
    });
    assert.throws(() => new RawwsClient({}), RawwsError);
  });
});
