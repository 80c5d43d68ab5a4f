// The SSE parser of rawws.js, on its own: the HTML standard's line rules, fed in awkward pieces.

import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser, formatPosition } from "../../rawws/chat/static/rawws.js";

function parse(chunks) {
  const events = [];
  const comments = [];
  const parser = new SseParser((event) => events.push(event), (text) => comments.push(text));
  for (const chunk of chunks) parser.feed(chunk);
  return { events, comments, parser };
}

test("events, ids, comments and retry, with every line ending, split anywhere", () => {
  const stream = 'retry: 2000\r\n\r\ndata: {"type":"session"}\r\nid: lobby:42\r\n\r\n: heartbeat\rdata:{"a":1}\rid:x:1\r\r'
    + 'data: one\ndata: two\n\nid\n\n';
  const whole = parse([stream]);
  for (const size of [1, 2, 3, 7]) {
    const chunks = [];
    for (let at = 0; at < stream.length; at += size) chunks.push(stream.slice(at, at + size));
    assert.deepEqual(parse(chunks).events, whole.events, `chunks of ${size}`);
    assert.deepEqual(parse(chunks).comments, whole.comments, `chunks of ${size}`);
  }
  assert.deepEqual(whole.events.map((e) => [e.data, e.id]), [
    ['{"type":"session"}', "lobby:42"],
    ['{"a":1}', "x:1"],
    ["one\ntwo", "x:1"],
  ]);
  assert.deepEqual(whole.comments, ["heartbeat"]);
  assert.equal(whole.parser.retry, 2000);
  assert.equal(whole.parser.lastEventId, "", "an `id` line with no value empties the id");
});

test("an event without data is not dispatched; an unfinished one waits for its blank line", () => {
  assert.deepEqual(parse(["id: 7\n\n", "event: x\n\n"]).events, []);
  assert.deepEqual(parse(["data: half"]).events, []);
});

test("the position names every room with an id, in join order", () => {
  assert.equal(formatPosition([["lobby", 42], ["dev.k3j9x0q2", 7], ["new", null]]), "lobby:42,dev.k3j9x0q2:7");
  assert.equal(formatPosition([]), "");
});
