// The rawws chat page. No framework, no build step, no network but this origin.
//
// * The connection is the client library's (rawws.js, imported below: the page serves it with a
//   content hash in its URL): a WebSocket where one gets through, else Server-Sent Events with
//   POST /send, else long-polling; the header says which ("WebSocket", "SSE", "long-polling").
// * The access token lives in memory and in sessionStorage (this tab only), never
//   in a URL: every WebSocket buys a fresh single-use ticket with
//   POST /auth/ticket and opens ws(s)://<this host>/ws?ticket=…, offering rawws.v1;
//   SSE and long-polling send it in an Authorization header.
// * The refresh token is never seen by this script: the server keeps it in an HttpOnly,
//   SameSite=Strict cookie for /auth (docs/protocol.md, "A browser's session"). It renews
//   the access token a minute before it expires (POST /auth/refresh with the
//   X-Rawws-Session header, rotated on every use; tabs take turns through a Web Lock so
//   two never present one token), so a tab left open for a working day stays signed in,
//   and a new tab or a restarted browser signs in from the cookie without a prompt. A socket opened with the old token still ends with
//   1008 when that token expires; the page reconnects with the new one and `since`,
//   without a prompt. Only a refused refresh (revoked, replayed, expired) signs out.
// * A dropped connection is retried (by the library) with capped exponential backoff and jitter;
//   every room is joined again with `since` = the last message id seen there, so
//   the server replays exactly what was missed. Messages are kept by id per room
//   and inserted in id order, so nothing is shown twice.
// * Membership events (`member`: invited, kicked, muted, a new role, a first join, a leave for
//   good…) take the room's ids like messages: they are shown in words in their place and advance
//   the `since` of a re-join. `removed` drops the room (not joined again). Owners and moderators
//   get the member list's moderation buttons; the server decides, and its `moderated` or
//   `error` is shown. "Leave for good" (`leave` with `for_good`) ends your membership: the room
//   stays until the server's `left` says it is done (an owner is refused: hand it over first).
// * All text from users or the server goes in with textContent, never as HTML.
// * The protocol's limits (room names, text length, rooms per connection, history
//   page, frame rate) are not copied here: every welcome frame carries them
//   (docs/protocol.md), and the page checks what it sends against the last ones it
//   read. Until the first welcome it checks nothing the server will not check.
import { RawwsClient } from "/static/rawws.js";

(() => {
  const OFFLINE_AFTER_ATTEMPTS = 5; // failed attempts in a row before "reconnecting" becomes "offline"
  const GROUP_WINDOW_S = 5 * 60; // consecutive messages of one author within this are grouped
  const NOTICE_MS = 7000;
  const STORAGE = {
    token: "rawws.token",
    refresh: "rawws.refresh", // where pages before the cookie session kept it: removed at start
    expiresAt: "rawws.expiresAt",
    user: "rawws.user",
    rooms: "rawws.rooms",
  };
  const PALETTE_SIZE = 8;

  // Error codes in words; those that state a limit say the one the server sent (state.limits).
  const FRIENDLY_ERRORS = {
    rate_limited: "You're sending messages a little fast. Wait a moment, then try again.",
    too_long: (limits) => `That message is too long: the limit is ${limits.max_text_chars} characters.`,
    not_joined: "You're not in that room any more. Join it again to send messages there.",
    too_many_rooms: (limits) =>
      `You're in as many rooms as you can be (${limits.max_rooms_per_connection}). Leave one to join another.`,
    bad_room: (limits) => `Room names are ${limits.room_rule}.`,
    unavailable: "The server couldn't save that just now. Please try again.",
    // A private room you are not in reads exactly like no room at all (docs/protocol.md).
    no_such_room: "There is no room by that name that you can join.",
    no_such_user: "There is no user by that name.",
    room_taken: "That room exists already: join it.",
    forbidden: "Only the room's owner or a moderator may do that.",
    muted: "You're muted in this room for now.",
    banned: "That user is banned from this room: unban them first.",
    not_member: "That user is not a member of this room.",
    not_banned: "That user is not banned from this room.",
    bad_target: "That can't be done to that user (yourself, the owner, or nothing to change).",
    bad_role: "That is not a role: owner, moderator or member.",
  };

  // What a membership event says in a room's timeline (docs/protocol.md, `member`).
  const EVENT_WORDS = {
    joined: (e) => `${e.user} joined`,
    left: (e) => `${e.user} left for good`,
    invited: (e) => `${e.user} was invited by ${e.by}`,
    kicked: (e) => `${e.user} was kicked by ${e.by}`,
    banned: (e) => `${e.user} was banned by ${e.by}`,
    unbanned: (e) => `${e.user} was unbanned by ${e.by}`,
    muted: (e) => `${e.user} was muted by ${e.by}${Number.isFinite(e.until) ? ` until ${untilText(e.until)}` : ""}`,
    unmuted: (e) => `${e.user} was unmuted by ${e.by}`,
    role: (e) => `${e.user} is now ${typeof e.role === "string" ? e.role : "changed"} (by ${e.by})`,
  };
  // The mute durations the member list offers, in seconds.
  const MUTE_CHOICES = [[60, "1 min"], [600, "10 min"], [3600, "1 h"], [86400, "1 day"]];
  const ROLE_RANK = { owner: 3, moderator: 2, member: 1 };

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // -- state ------------------------------------------------------------------------

  const state = {
    client: null, // the RawwsClient of this sign-in (rawws.js): the connection, the tokens' renewal
    token: null,
    user: null,
    rooms: new Map(), // name -> Room, in the order joined
    current: null,
    waiting: false, // the client waits before trying again (its backoff)
    countdownTimer: null,
    retryAt: 0,
    connection: "offline",
    useDefaults: false, // add the server's default rooms at the next welcome (a fresh sign-in)
    restoreRooms: false, // join again the rooms the server says you belong to (a fresh sign-in)
    everOnline: false,
    pending: new Map(), // ref -> {room, text, node}
    limits: null, // the protocol's limits, from the last welcome (readLimits)
    refSeq: 0,
    noticeTimer: null,
    directory: [], // the last `rooms` answer: every room this user may see, with its kind
    others: new Map(), // direct room name -> the other user (from `direct` and `rooms`)
    parting: new Set(), // rooms whose `leave` for good is on its way: gone when `left` answers
  };

  class Room {
    constructor(name) {
      this.name = name;
      this.joined = false; // confirmed by `joined` on the current connection
      this.feed = false; // its `joined` said kind "feed": read only, no composer
      this.baseline = false; // got its first `joined` (and asked for the history before it)
      this.lastId = 0; // the highest id of a `message` frame received in this room
      this.ids = []; // ids shown, ascending
      this.nodes = new Map(); // id -> <li>
      this.orphans = []; // own messages whose connection dropped before their ack
      this.members = new Set();
      this.roles = new Map(); // user -> role, from `who` in a room with stored membership
      this.unread = 0;
      this.lastRead = 0; // the user's read marker here (from `joined` and `read`)
      this.readSent = 0; // the highest id this page sent a `read` for
      this.readTimer = null;
      this.typing = new Map(); // user -> until when (ms) they are shown typing
      this.typingSentAt = 0;
      this.streams = new Map(); // stream -> {node, text, seq}: an application's message arriving
      this.streamsDone = new Set(); // streams whose message came (a late chunk is dropped)
      this.historyDone = false;
      this.historyPending = false;
      this.list = el("ol", "message-list");
      this.list.dataset.room = name;
      this.list.hidden = true;
      this.earlier = el("li", "load-earlier");
      const button = el("button", "link-button", "Load earlier messages");
      button.type = "button";
      button.addEventListener("click", () => requestHistory(this));
      this.earlier.append(button);
      this.earlier.hidden = true;
      this.empty = el("li", "empty-room", `This is the start of #${name}. Say hello!`);
      this.empty.hidden = true;
      this.list.append(this.earlier, this.empty);
    }
  }

  // -- small helpers ---------------------------------------------------------------

  function hue(name) {
    let hash = 0;
    for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    return hash % PALETTE_SIZE;
  }

  function avatar(name, className = "avatar") {
    const node = el("span", `${className} tone-${hue(name)}`, (name[0] || "?").toUpperCase());
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const dayTimeFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "numeric", month: "short", hour: "numeric", minute: "2-digit",
  });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
  const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

  // The day separator's words for a moment: "Today", "Yesterday" or the date in full.
  function dayLabel(ts) {
    const date = new Date(ts * 1000);
    const today = new Date();
    if (date.toDateString() === today.toDateString()) return "Today";
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
    return dayFormat.format(date);
  }

  // http(s) addresses in a message, as typed: a link ends before white space, and before
  // punctuation that ends a sentence or closes a bracket the address did not open.
  const LINK = /\bhttps?:\/\/[^\s<>"]+/g;

  function linkEnd(address) {
    let end = address.length;
    while (end > 0 && /[.,;:!?'*]/.test(address[end - 1])) end--;
    if (address[end - 1] === ")" && !address.slice(0, end).includes("(")) end--;
    return end;
  }

  // A message's text as a paragraph: its words as text nodes, its addresses as links (opened
  // in a new tab, without the page's referrer or a handle on it). Never parsed as HTML.
  function textWithLinks(text, className = "text") {
    const paragraph = el("p", className);
    let at = 0;
    for (const match of text.matchAll(LINK)) {
      const address = match[0].slice(0, linkEnd(match[0]));
      let url = null;
      try {
        url = new URL(address);
      } catch (_) {
        url = null;
      }
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
      paragraph.append(text.slice(at, match.index));
      const link = el("a", "", address);
      link.href = url.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      paragraph.append(link);
      at = match.index + address.length;
    }
    paragraph.append(text.slice(at));
    return paragraph;
  }

  // A moment (seconds since the epoch) in local time: the time alone today, else with the day.
  function untilText(ts) {
    const date = new Date(ts * 1000);
    return date.toDateString() === new Date().toDateString() ? timeFormat.format(date) : dayTimeFormat.format(date);
  }

  function timeElement(ts) {
    const date = new Date(ts * 1000);
    const node = el("time", "time");
    const today = new Date();
    node.textContent = date.toDateString() === today.toDateString() ? timeFormat.format(date) : dayTimeFormat.format(date);
    node.dateTime = date.toISOString();
    node.title = fullFormat.format(date);
    return node;
  }

  function storage(action, key, value) {
    try {
      if (action === "get") return sessionStorage.getItem(key);
      if (action === "set") sessionStorage.setItem(key, value);
      if (action === "remove") sessionStorage.removeItem(key);
    } catch (_) {
      // private mode or storage disabled: memory only
    }
    return null;
  }

  function saveRooms() {
    storage("set", STORAGE.rooms, JSON.stringify([...state.rooms.keys()]));
  }

  function friendlyError(code, message) {
    if (code === "bad_field") return `That couldn't be sent: ${message}.`;
    const friendly = FRIENDLY_ERRORS[code];
    if (typeof friendly === "string") return friendly;
    if (friendly && state.limits) return friendly(state.limits);
    if (friendly && message) return capitalise(message); // the server's own words for its limit
    return `Something went wrong: ${message || code}.`;
  }

  // -- the protocol's limits, as the server sent them --------------------------------

  // The welcome's `limits`, checked: numbers that are whole and positive, a room pattern
  // that compiles. Anything else leaves the page without limits of its own.
  function readLimits(sent) {
    if (!sent || typeof sent !== "object") return null;
    const counts = [
      "max_text_chars", "max_ref_chars", "default_history_limit", "max_history_limit",
      "max_rooms_per_connection", "message_burst",
    ];
    if (!counts.every((name) => Number.isSafeInteger(sent[name]) && sent[name] > 0)) return null;
    if (typeof sent.room_rule !== "string" || typeof sent.room_name !== "string") return null;
    let roomName;
    try {
      roomName = new RegExp(`^(?:${sent.room_name})$`);
    } catch (_) {
      return null;
    }
    return { ...sent, roomName };
  }

  function validRoom(name) {
    return typeof name === "string" && (!state.limits || state.limits.roomName.test(name));
  }

  // No maxlength on the box: it would cut a long paste short in silence. The box keeps all of
  // it, and says how far over the limit it is before anything is sent (characters as the
  // server counts them: code points, not UTF-16 units).
  function applyLimits() {
    $("message-input").removeAttribute("maxlength");
    updateLength();
  }

  function updateLength() {
    const box = $("length-warning");
    const most = state.limits ? state.limits.max_text_chars : 0;
    const length = most ? Array.from($("message-input").value).length : 0;
    box.hidden = !most || length <= most;
    box.textContent = box.hidden ? "" : `${length.toLocaleString()} characters: the limit is ${most.toLocaleString()}.`
      + " Shorten it or split it in two before sending.";
  }

  function capitalise(text) {
    return text ? text[0].toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".") : text;
  }

  // -- notices ---------------------------------------------------------------------

  function showNotice(text) {
    $("notice-text").textContent = text;
    $("notice").hidden = false;
    clearTimeout(state.noticeTimer);
    state.noticeTimer = setTimeout(hideNotice, NOTICE_MS);
  }

  function hideNotice() {
    $("notice").hidden = true;
  }

  // -- the account forms -----------------------------------------------------------

  function showAuth(notice) {
    $("chat-view").hidden = true;
    $("auth-view").hidden = false;
    const box = $("auth-notice");
    box.textContent = notice || "";
    box.hidden = !notice;
    selectTab("login");
    document.title = "rawws chat";
    const username = $("login-username");
    if (!username.value) username.value = storage("get", STORAGE.user) || "";
    (username.value ? $("login-password") : username).focus();
  }

  function selectTab(which) {
    for (const name of ["login", "register"]) {
      const selected = name === which;
      $(`tab-${name}`).setAttribute("aria-selected", String(selected));
      $(`${name}-form`).hidden = !selected;
    }
  }

  function formError(form, text) {
    const box = form.querySelector(".form-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // Registration (everything else of the account is the client library's: rawws.js).
  async function postJson(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      // an empty or non-JSON answer
    }
    return { response, payload };
  }

  function serverMessage(payload) {
    return payload && payload.error && typeof payload.error.message === "string" ? payload.error.message : "";
  }

  // A client of this page's own (cookie session: the refresh token is an HttpOnly cookie) whose
  // events reach the page only while it is the signed-in one.
  function newClient() {
    const client = new RawwsClient({ auth: "cookie" });
    const on = (type, handler) => client.on(type, (value) => {
      if (state.client === client) handler(value);
    });
    on("token", keepToken);
    on("status", onStatus);
    on("transport", ({ transport }) => showTransport(transport));
    on("frame", onFrame);
    on("disconnect", onDisconnected);
    on("unauthorized", () => stopChat("Your session has expired. Please sign in again."));
    return client;
  }

  async function logIn(username, password) {
    const client = newClient();
    try {
      await client.login(username, password);
    } catch (error) {
      if (error instanceof TypeError) throw error; // fetch itself failed
      if (error.status === 401) throw new Error("Wrong username or password.");
      if (error.status === 429) {
        throw new Error(`Too many sign-in attempts. Try again in ${error.retryAfter || 60} seconds.`);
      }
      throw new Error(capitalise(error.serverMessage || "") || `Sign-in failed (HTTP ${error.status}).`);
    }
    return client;
  }

  async function submitAuth(form, action) {
    const button = form.querySelector("button[type=submit]");
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    if (!username || !password) {
      formError(form, "Enter a username and a password.");
      return;
    }
    formError(form, "");
    button.disabled = true;
    try {
      if (action === "register") {
        const { response, payload } = await postJson("/auth/register", { username, password });
        if (response.status === 409) throw new Error("That username is taken. Pick another one.");
        if (!response.ok) throw new Error(capitalise(serverMessage(payload)) || `Registration failed (HTTP ${response.status}).`);
      }
      const client = await logIn(username, password);
      form.elements.password.value = "";
      startChat(client, username);
    } catch (error) {
      const offline = error instanceof TypeError; // fetch itself failed
      formError(form, offline ? "Can't reach the server. Check your connection and try again." : error.message);
    } finally {
      button.disabled = false;
    }
  }

  // -- starting and stopping the chat -------------------------------------------------

  // The access token, kept for this tab (a reload signs in without the form); the client renews it.
  function keepToken({ accessToken, expiresIn }) {
    state.token = accessToken;
    const lifetime = Number(expiresIn);
    const expiresAt = Number.isFinite(lifetime) && lifetime > 0 ? Date.now() + lifetime * 1000 : 0;
    storage("set", STORAGE.token, accessToken);
    storage("set", STORAGE.expiresAt, String(expiresAt));
  }

  function startChat(client, username) {
    state.client = client;
    keepToken({ accessToken: client.accessToken, expiresIn: (client.tokenExpiresAt - Date.now()) / 1000 });
    state.user = username;
    storage("set", STORAGE.user, username);
    $("auth-view").hidden = true;
    $("chat-view").hidden = false;
    $("me-name").textContent = username;
    $("me-avatar").replaceWith(Object.assign(avatar(username), { id: "me-avatar" }));
    let saved = null;
    try {
      saved = JSON.parse(storage("get", STORAGE.rooms) || "null");
    } catch (_) {
      saved = null;
    }
    const names = Array.isArray(saved) ? saved.filter(validRoom) : [];
    state.useDefaults = !Array.isArray(saved); // a saved list, even an empty one, wins over the defaults
    state.everOnline = false;
    for (const name of state.useDefaults ? [] : names) sendJoin(ensureRoom(name)); // the defaults come with the welcome
    selectRoom(state.rooms.keys().next().value || null);
    setConnection("connecting");
    client.connect();
    $("message-input").focus();
  }

  function stopChat(notice, { logout = false } = {}) {
    const client = state.client;
    state.client = null;
    if (client) {
      if (logout) client.logout().catch(() => {}); // revoke this login, drop the cookie
      else client.close();
    }
    state.token = null;
    storage("remove", STORAGE.token);
    storage("remove", STORAGE.refresh);
    storage("remove", STORAGE.expiresAt);
    storage("remove", STORAGE.rooms);
    clearInterval(state.countdownTimer);
    state.waiting = false;
    state.rooms.clear();
    state.pending.clear();
    state.parting.clear();
    state.current = null;
    state.useDefaults = false;
    state.restoreRooms = false;
    $("messages").replaceChildren();
    $("room-list").replaceChildren();
    $("member-list").replaceChildren();
    setConnection("offline");
    showTransport(null);
    hideNotice();
    showAuth(notice);
  }

  // -- the connection ----------------------------------------------------------------

  const CONNECTION_LABELS = {
    connecting: "Connecting…",
    online: "Online",
    reconnecting: "Reconnecting…",
    offline: "Offline",
  };
  const TRANSPORT_LABELS = { websocket: "WebSocket", sse: "SSE", poll: "long-polling" };

  function setConnection(name) {
    state.connection = name;
    const box = $("connection");
    box.dataset.state = name;
    updateConnectionLabel();
    $("retry-now").hidden = !(name === "reconnecting" || name === "offline") || !state.client;
    $("send-button").disabled = name !== "online";
    document.body.dataset.connection = name;
  }

  // Which transport carries the chat (the library's choice: docs/transports.md).
  function showTransport(name) {
    const box = $("transport");
    box.dataset.transport = name || "";
    box.textContent = name ? TRANSPORT_LABELS[name] || name : "";
    box.title = name ? `Connected over ${TRANSPORT_LABELS[name] || name}` : "";
    box.hidden = !name;
  }

  function updateConnectionLabel() {
    let label = CONNECTION_LABELS[state.connection];
    if (state.waiting && (state.connection === "reconnecting" || state.connection === "offline")) {
      const seconds = Math.ceil((state.retryAt - Date.now()) / 1000);
      if (seconds > 1) label = `${state.connection === "offline" ? "Offline" : "Reconnecting"} · retry in ${seconds}s`;
    }
    $("connection-label").textContent = label;
  }

  // The client's progress: "online" is said by the welcome (onWelcome), after the page read its limits.
  function onStatus({ status, attempt, retryAt }) {
    clearInterval(state.countdownTimer);
    state.waiting = status === "waiting";
    if (status === "connecting") {
      if (!state.everOnline) setConnection("connecting");
      else if (state.connection === "online") setConnection("reconnecting");
    } else if (status === "waiting") {
      state.retryAt = retryAt;
      state.countdownTimer = setInterval(updateConnectionLabel, 1000);
      const offline = attempt > OFFLINE_AFTER_ATTEMPTS || navigator.onLine === false;
      setConnection(offline ? "offline" : "reconnecting");
    }
  }

  // A connection that was online ended: the client reconnects by itself and joins every room again.
  function onDisconnected() {
    for (const room of state.rooms.values()) room.joined = false;
    for (const name of state.parting) {
      // Done or not, the server may have ended the membership: joining again would begin a new one.
      dropRoom(name);
      showNotice(`The connection dropped while leaving ${labelOf(name)} for good. Join it again if you're still a member.`);
    }
    state.parting.clear();
    if (state.connection === "online") setConnection("reconnecting");
  }

  function send(frame) {
    return state.client ? state.client.send(frame) : false;
  }

  // Into the room, now or once connected, and again after every reconnection (with `since`: the
  // client keeps the last id of each room).
  function sendJoin(room) {
    if (state.client) state.client.join(room.name);
  }

  function requestHistory(room) {
    if (room.historyPending || room.historyDone || !room.joined) return;
    const before = room.ids.length ? room.ids[0] : room.lastId + 1;
    if (before <= 1) {
      room.historyDone = true;
      updateEarlier(room);
      return;
    }
    room.historyPending = true;
    send({ type: "history", room: room.name, before, limit: historyPage() });
  }

  function historyPage() {
    return state.limits ? state.limits.default_history_limit : undefined; // undefined: the server's default
  }

  // -- frames from the server ---------------------------------------------------------

  // Every frame the client passes on (parsed, and without one it had already: a resume's overlap).
  function onFrame(frame) {
    if (!frame || typeof frame.type !== "string") return;
    switch (frame.type) {
      case "welcome": return onWelcome(frame);
      case "joined": return onJoined(frame);
      case "left": return onLeft(frame);
      case "message": return addMessage(frame, { live: true });
      case "ack": return onAck(frame);
      case "presence": return onPresence(frame);
      case "members": return setMembers(frame.room, frame.users, frame.roles);
      case "history": return onHistory(frame);
      case "error": return onError(frame);
      case "invitation": return onInvitation(frame);
      case "created": return onCreated(frame);
      case "invited": return onInvited(frame);
      case "direct": return onDirect(frame);
      case "rooms": return onRooms(frame);
      case "member": return addEvent(frame, { live: true });
      case "removed": return onRemoved(frame);
      case "moderated": return onModerated(frame);
      case "edited": return onEdited(frame);
      case "deleted": return onDeleted(frame);
      case "read": return onRead(frame);
      case "typing": return onTyping(frame);
      case "stream": return onStream(frame);
      case "gap": return onGap(frame);
      default: return;
    }
  }

  // Someone let you into a private room: its name is the way in (type it into "Join a room",
  // or pick it from "Rooms you may join", asked for again now).
  function onInvitation(frame) {
    if (typeof frame.room !== "string" || typeof frame.by !== "string") return;
    showNotice(`${frame.by} invited you to ${frame.room}. Join it by that name.`);
    send({ type: "rooms", ref: "rooms" });
  }

  // -- doors: private rooms, invitations, direct rooms (docs/protocol.md) ------------------

  // A room's kind, told by its name alone (as the server tells it): a '.' is private, a '~' direct.
  function kindOf(name) {
    if (name.startsWith("~")) return "direct";
    return name.includes(".") ? "private" : "public";
  }

  // What a room is called on the page: a direct room by the other user's name (after an "@").
  function labelOf(name) {
    return state.others.get(name) || name;
  }

  function signOf(name) {
    return kindOf(name) === "direct" ? "@" : "#";
  }

  function onCreated(frame) {
    if (typeof frame.room !== "string" || !validRoom(frame.room)) return;
    joinRoom(frame.room);
    send({ type: "rooms", ref: "rooms" });
  }

  function onInvited(frame) {
    if (typeof frame.room !== "string" || typeof frame.user !== "string") return;
    showNotice(`${frame.user} may join ${frame.room} now.`);
  }

  // The direct room of you and `user`: the answer to our `dm` (opened and shown), or the other
  // one opened it (joined in the background, so what they say arrives).
  function onDirect(frame) {
    if (typeof frame.room !== "string" || typeof frame.user !== "string" || !validRoom(frame.room)) return;
    state.others.set(frame.room, frame.user);
    if (typeof frame.ref === "string" && frame.ref.startsWith("dm:")) {
      joinRoom(frame.room);
      return;
    }
    if (!state.rooms.has(frame.room)) {
      const room = ensureRoom(frame.room);
      if (state.connection === "online") sendJoin(room);
      showNotice(`${frame.user} started a direct conversation with you.`);
    }
    renderRoomList();
  }

  function openDirect(user) {
    send({ type: "dm", user, ref: `dm:${user}`.slice(0, 64) });
  }

  function onRooms(frame) {
    if (!Array.isArray(frame.rooms)) return;
    state.directory = frame.rooms.filter((r) => r && typeof r.room === "string" && validRoom(r.room));
    for (const entry of state.directory) {
      if (entry.kind === "direct" && typeof entry.user === "string") state.others.set(entry.room, entry.user);
    }
    if (state.restoreRooms) restoreRooms();
    renderRoomList();
    renderDirectory();
    if (state.current) selectRoomTitle(state.current);
    renderMembers();
  }

  // A fresh sign-in (a new tab, a restarted browser): the rooms you are a member of (a role
  // in the `rooms` answer) are joined again, as far as the connection's room limit allows.
  // The server remembers them: "Leave for good" is what ends a membership.
  function restoreRooms() {
    state.restoreRooms = false;
    const most = state.limits ? state.limits.max_rooms_per_connection : Infinity;
    for (const entry of state.directory) {
      if (state.rooms.size >= most) break;
      if (typeof entry.role !== "string" || state.rooms.has(entry.room) || state.parting.has(entry.room)) continue;
      const room = ensureRoom(entry.room);
      if (state.connection === "online") sendJoin(room);
    }
    saveRooms();
    renderRoomList();
  }

  // Every room you may see and are not in: one click joins it.
  function renderDirectory() {
    const items = [];
    for (const entry of state.directory) {
      if (state.rooms.has(entry.room)) continue;
      const item = el("li", "room-item");
      item.dataset.room = entry.room;
      const open = el("button", "room-button");
      open.type = "button";
      const role = typeof entry.role === "string" ? `, ${entry.role}` : "";
      open.append(
        el("span", "hash", signOf(entry.room)),
        el("span", "room-label", labelOf(entry.room)),
        el("span", "room-kind", `${entry.kind}${role}`),
      );
      open.addEventListener("click", () => joinRoom(entry.room));
      item.append(open);
      items.push(item);
    }
    if (items.length === 0) items.push(el("li", "room-empty", "None besides yours."));
    $("directory").replaceChildren(...items);
  }

  // The stored roles come with `who` of a private or direct room; asked for the room on screen
  // only, so a reconnect that joins many rooms again spends no more frames of its rate on them.
  function askRoles(room) {
    if (room.joined && kindOf(room.name) !== "public") send({ type: "who", room: room.name });
  }

  function selectRoomTitle(name) {
    $("room-name").textContent = name ? labelOf(name) : "no room";
    document.querySelector(".room-title .hash").textContent = name ? signOf(name) : "#";
  }

  function onWelcome(frame) {
    state.limits = readLimits(frame.limits);
    applyLimits();
    for (const name of [...state.rooms.keys()]) if (!validRoom(name)) removeRoom(name);
    if (typeof frame.user === "string" && frame.user) {
      state.user = frame.user; // the server's spelling of the name
      $("me-name").textContent = frame.user;
    }
    if (state.useDefaults && Array.isArray(frame.rooms)) {
      for (const name of frame.rooms) if (validRoom(name)) ensureRoom(name);
      if (!state.current) selectRoom(state.rooms.keys().next().value || null);
      state.restoreRooms = true; // and the rooms you belong to, from the answer to `rooms`
    }
    state.useDefaults = false;
    state.everOnline = true;
    clearInterval(state.countdownTimer);
    state.waiting = false;
    setConnection("online");
    for (const room of state.rooms.values()) sendJoin(room); // the client joined its own again already
    send({ type: "rooms", ref: "rooms" });
  }

  function onJoined(frame) {
    const room = state.rooms.get(frame.room);
    if (!room) {
      send({ type: "leave", room: frame.room }); // left while the join was on its way
      return;
    }
    room.joined = true;
    room.feed = frame.kind === "feed"; // only its application posts there: no composer
    if (room.name === state.current) renderComposer();
    if (Number.isSafeInteger(frame.last_read)) room.lastRead = Math.max(room.lastRead, frame.last_read);
    if (Number.isSafeInteger(frame.unread) && room.name !== state.current) room.unread = frame.unread;
    room.readSent = Math.max(room.readSent, room.lastRead);
    setMembers(room.name, frame.users);
    if (room.name === state.current) askRoles(room);
    if (!room.baseline) {
      room.baseline = true;
      const lastId = Number.isSafeInteger(frame.last_id) ? frame.last_id : 0;
      room.lastId = Math.max(room.lastId, lastId);
      if (lastId > 0 && room.ids.length === 0) {
        room.historyPending = true;
        send({ type: "history", room: room.name, before: lastId + 1, limit: historyPage() });
      } else if (lastId === 0) {
        room.historyDone = true;
      }
    }
    updateEarlier(room);
  }

  function onHistory(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || !Array.isArray(frame.messages)) return;
    room.historyPending = false;
    const box = $("messages");
    const visible = room.name === state.current;
    const fromBottom = box.scrollHeight - box.scrollTop;
    const wasEmpty = room.ids.length === 0;
    for (const message of frame.messages) {
      if (message && message.type === "member") addEvent(message, { live: false });
      else addMessage(message, { live: false });
    }
    const asked = historyPage(); // without the server's limits, one page is all
    if (!asked || frame.messages.length < asked || (room.ids.length && room.ids[0] <= 1)) room.historyDone = true;
    updateEarlier(room);
    if (wasEmpty) markNewMessages(room);
    if (visible) box.scrollTop = wasEmpty ? box.scrollHeight : box.scrollHeight - fromBottom;
    noteSeen(room);
  }

  function onAck(frame) {
    const pending = state.pending.get(frame.ref);
    if (!pending) return;
    state.pending.delete(frame.ref);
    const room = state.rooms.get(pending.room);
    const node = pending.node;
    if (!room || !Number.isSafeInteger(frame.id)) return;
    if (room.nodes.has(frame.id)) {
      node.remove(); // the message itself came first
      return;
    }
    node.dataset.state = "sent";
    node.querySelector(".status").textContent = "";
    placeMessage(room, frame.id, node);
  }

  function onPresence(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || typeof frame.user !== "string") return;
    if (frame.event === "joined") room.members.add(frame.user);
    else if (frame.event === "left") room.members.delete(frame.user);
    if (frame.event === "joined" && !room.roles.has(frame.user) && room.name === state.current) {
      askRoles(room); // a new member: their role
    }
    if (room.name === state.current) renderMembers();
  }

  function onError(frame) {
    let text = friendlyError(frame.code, typeof frame.message === "string" ? frame.message : "");
    if (frame.code === "muted" && Number.isFinite(frame.until)) {
      text = `You're muted in this room until ${untilText(frame.until)}.`;
    }
    const ref = typeof frame.ref === "string" ? frame.ref : null;
    if (!ref && frame.code === "rate_limited") {
      // Over the frame rate the server drops frames unread and says so once, without a ref:
      // whatever is still pending may have been dropped. Mark it not sent (an ack or the
      // message itself still adopts it if it was read), and ask again for rooms not joined yet.
      for (const [pendingRef, pending] of state.pending) {
        state.pending.delete(pendingRef);
        markFailed(pending, "Not sent.", true);
        state.rooms.get(pending.room)?.orphans.push(pending);
      }
      for (const room of state.rooms.values()) {
        if (!room.joined) {
          setTimeout(() => {
            if (state.rooms.get(room.name) === room && !room.joined) sendJoin(room);
          }, 1000 + Math.random() * 1000);
        }
      }
      showNotice(text);
      return;
    }
    if (ref && state.pending.has(ref)) {
      const pending = state.pending.get(ref);
      state.pending.delete(ref);
      markFailed(pending, frame.code === "muted" ? "Not sent: you're muted." : "Not sent.", true);
      state.rooms.get(pending.room)?.orphans.push(pending);
    } else if (ref && ref.startsWith("part:")) {
      // "Leave for good" refused: the room stays yours (an owner hands it over first).
      const name = ref.slice(5);
      state.parting.delete(name);
      if (frame.code === "forbidden") text = `You own ${labelOf(name)}: make someone else its owner first.`;
      else if (frame.code === "bad_room") text = "A direct conversation can't be left for good.";
      renderMembers();
    } else if (ref && ref.startsWith("join:")) {
      if (frame.code === "banned") text = `You're banned from ${labelOf(ref.slice(5))}.`; // a public room
      const room = state.rooms.get(ref.slice(5));
      if (room && !room.joined) {
        if (frame.code === "rate_limited") {
          // Many rooms joined again at once can outrun the frame rate limit: try again shortly.
          setTimeout(() => {
            if (state.rooms.get(room.name) === room && !room.joined) sendJoin(room);
          }, 1000 + Math.random() * 1000);
          return;
        }
        removeRoom(room.name);
      }
    }
    showNotice(text);
  }

  // -- membership events, removal and moderation (docs/protocol.md) -------------------------

  function validEvent(e) {
    return e && typeof e.room === "string" && Number.isSafeInteger(e.id) && typeof e.event === "string"
      && typeof e.user === "string" && typeof e.by === "string" && typeof e.ts === "number";
  }

  // A `member` frame (live or replayed) or a `member` object in a `history` answer: shown in words
  // in its place, and counted in the room's ids like a message, so `since` stays exact.
  function addEvent(event, { live }) {
    if (!validEvent(event)) return;
    const room = state.rooms.get(event.room);
    if (!room) return;
    if (live) room.lastId = Math.max(room.lastId, event.id);
    if (room.nodes.has(event.id)) return;
    const words = EVENT_WORDS[event.event];
    const node = el("li", "event");
    node.dataset.ts = String(event.ts);
    node.dataset.event = event.event;
    node.dataset.user = event.user;
    node.append(el("span", "event-text", words ? words(event) : `${event.user}: ${event.event} (by ${event.by})`));
    node.append(timeElement(event.ts));
    const box = $("messages");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    placeMessage(room, event.id, node);
    if (live) {
      if (event.event === "role" && typeof event.role === "string") {
        room.roles.set(event.user, event.role);
        if (event.role === "owner") room.roles.set(event.by, "moderator"); // the owner handed it over
      } else if (event.event === "kicked" || event.event === "banned" || event.event === "left") {
        room.roles.delete(event.user);
        room.members.delete(event.user);
      }
      if (room.name === state.current) {
        renderMembers();
        if (nearBottom) box.scrollTop = box.scrollHeight;
      }
    }
  }

  // This connection was taken out of a room (kicked or banned, or you left it for good on another
  // connection): gone from the list, not joined again on a reconnect, and said so.
  function onRemoved(frame) {
    if (typeof frame.room !== "string") return;
    const label = labelOf(frame.room);
    state.parting.delete(frame.room);
    dropRoom(frame.room);
    if (frame.reason === "left") {
      showNotice(`You left ${label} for good.`); // your own doing, elsewhere: nothing alarming
    } else if (frame.reason === "deleted") {
      const by = typeof frame.by === "string" ? ` by ${frame.by}` : "";
      showNotice(`${label} was deleted${by}.`); // the server API removed the room itself
    } else {
      const reason = frame.reason === "banned" ? "banned" : "kicked";
      const by = typeof frame.by === "string" ? ` by ${frame.by}` : "";
      showNotice(`You were ${reason} from ${label}${by}.`);
    }
    send({ type: "rooms", ref: "rooms" });
  }

  // The answer to `leave`. A plain one took its room off the page already; one for good (its
  // `id` is the stored `left` event's) takes it off now.
  function onLeft(frame) {
    if (typeof frame.room !== "string" || !state.parting.has(frame.room)) return;
    state.parting.delete(frame.room);
    dropRoom(frame.room);
    showNotice(Number.isSafeInteger(frame.id) ? `You left ${labelOf(frame.room)} for good.` : `You left ${labelOf(frame.room)}.`);
    send({ type: "rooms", ref: "rooms" });
  }

  // The server took this connection out of the room already: no `leave`.
  function dropRoom(name) {
    const room = state.rooms.get(name);
    if (!room) return;
    room.joined = false;
    for (const [ref, pending] of state.pending) if (pending.room === name) state.pending.delete(ref);
    removeRoom(name);
  }

  // "Leave for good": end your membership of the current room. Not for a direct room (the pair's
  // for good) nor, once the page knows it, for its owner (the server refuses both anyway).
  function leaveForGood() {
    const room = state.current ? state.rooms.get(state.current) : null;
    if (!room || state.parting.has(room.name)) return;
    if (!room.joined || !state.client || !state.client.leave(room.name, { forGood: true })) {
      showNotice("You're not connected right now. Try again once you're back online.");
      return;
    }
    state.parting.add(room.name);
    renderMembers();
  }

  const DONE_WORDS = {
    kicked: "was kicked from", banned: "was banned from", unbanned: "was unbanned in",
    muted: "was muted in", unmuted: "was unmuted in", role: "has a new role in",
  };

  function onModerated(frame) {
    if (typeof frame.room !== "string" || typeof frame.user !== "string") return;
    const done = DONE_WORDS[frame.event] || `: ${frame.event} in`;
    showNotice(`Done: ${frame.user} ${done} ${labelOf(frame.room)}.`);
  }

  function myRole(room) {
    const role = room.roles.get(state.user);
    if (role) return role;
    const entry = state.directory.find((r) => r.room === room.name);
    return entry && typeof entry.role === "string" ? entry.role : null;
  }

  function moderate(frame) {
    frame.ref = `mod${++state.refSeq}`;
    if (!send(frame)) showNotice("You're not connected right now. Try again once you're back online.");
  }

  // Kick, ban, mute and unmute a member whose role is below yours; the owner also sets roles.
  // The server decides (an `error` says why not): these only spare a plain member useless buttons.
  function moderationControls(room, user) {
    const mine = ROLE_RANK[myRole(room)] || 0;
    const theirs = ROLE_RANK[room.roles.get(user)] || ROLE_RANK.member;
    if (mine < ROLE_RANK.moderator || theirs >= mine) return null;
    const box = el("div", "member-actions");
    const button = (action, text, frame) => {
      const node = el("button", "link-button", text);
      node.type = "button";
      node.dataset.action = action;
      node.addEventListener("click", () => moderate(frame()));
      return node;
    };
    const target = { room: room.name, user };
    const duration = el("select", "mute-duration");
    duration.setAttribute("aria-label", `How long to mute ${user}`);
    for (const [seconds, text] of MUTE_CHOICES) {
      const option = el("option", "", text);
      option.value = String(seconds);
      duration.append(option);
    }
    box.append(
      button("kick", "Kick", () => ({ type: "kick", ...target })),
      button("ban", "Ban", () => ({ type: "ban", ...target })),
      duration,
      button("mute", "Mute", () => ({ type: "mute", ...target, seconds: Number(duration.value) })),
      button("unmute", "Unmute", () => ({ type: "unmute", ...target })),
    );
    if (mine === ROLE_RANK.owner) {
      const promote = room.roles.get(user) === "moderator"
        ? button("member", "Make member", () => ({ type: "role", ...target, role: "member" }))
        : button("moderator", "Make moderator", () => ({ type: "role", ...target, role: "moderator" }));
      box.append(promote);
    }
    return box;
  }

  // -- edits and deletions, read markers, typing (docs/protocol.md) ----------------------

  const TYPING_EVERY_MS = 3000; // how often typing is said while one types (the server allows 1/s)
  const READ_AFTER_MS = 800; // a room in view this long has been read up to its newest id

  // A message's text as it is now: "(edited)" after an edit, a tombstone once deleted (its
  // text is gone from the server: the frame carries none).
  function showState(node, message) {
    const text = node.querySelector(".text");
    if (message.deleted === true) {
      const by = typeof message.deleted_by === "string" && message.deleted_by !== node.dataset.user
        ? ` by ${message.deleted_by}` : "";
      text.replaceWith(el("p", "text tombstone", `Message deleted${by}.`));
      node.dataset.deleted = "true";
      node.messageText = "";
      node.querySelector(".message-actions")?.remove();
      node.querySelector(".edited")?.remove();
      return;
    }
    if (typeof message.edited_at === "number" && !node.querySelector(".edited")) {
      const mark = el("span", "edited", "(edited)");
      mark.title = fullFormat.format(new Date(message.edited_at * 1000));
      node.querySelector(".meta").append(mark);
    }
  }

  // Edit and Delete on your own messages; Delete on anyone's for a room's owner or moderator
  // (the server decides: its `error` says why not).
  function addActions(room, node) {
    if (room.feed || node.dataset.deleted || node.querySelector(".message-actions")) return; // a feed: read only
    const own = node.dataset.user === state.user && !node.dataset.app;
    const manager = (ROLE_RANK[myRole(room)] || 0) >= ROLE_RANK.moderator;
    if (!own && !manager) return;
    const box = el("div", "message-actions");
    if (own) {
      const edit = el("button", "link-button", "Edit");
      edit.type = "button";
      edit.dataset.action = "edit";
      box.append(edit);
    }
    const remove = el("button", "link-button", "Delete");
    remove.type = "button";
    remove.dataset.action = "delete";
    box.append(remove);
    node.querySelector(".body").append(box);
  }

  function onMessageAction(event) {
    const button = event.target.closest("button[data-action]");
    const node = button && button.closest("li.message[data-id]");
    if (!node) return;
    const room = state.rooms.get(node.closest("ol").dataset.room);
    const id = Number(node.dataset.id);
    if (!room || !Number.isSafeInteger(id)) return;
    const action = button.dataset.action;
    if (action === "edit") openEditor(room, node, id);
    else if (action === "delete") askDelete(node, button);
    else if (action === "delete-yes") sendChange({ type: "delete", room: room.name, id, ref: `delete:${id}` });
    else if (action === "delete-no") node.querySelector(".confirm")?.remove();
  }

  function askDelete(node, button) {
    if (node.querySelector(".confirm")) return;
    const confirm = el("span", "confirm", "Delete this message? ");
    for (const [action, text] of [["delete-yes", "Delete"], ["delete-no", "Keep"]]) {
      const choice = el("button", "link-button", text);
      choice.type = "button";
      choice.dataset.action = action;
      confirm.append(choice, " ");
    }
    button.parentNode.append(confirm);
  }

  function openEditor(room, node, id) {
    if (node.querySelector(".editor")) return;
    const form = el("form", "editor");
    const box = el("textarea", "edit-input");
    box.value = node.messageText || "";
    box.setAttribute("aria-label", "Edit your message");
    const save = el("button", "primary", "Save");
    save.type = "submit";
    const cancel = el("button", "link-button", "Cancel");
    cancel.type = "button";
    form.append(box, save, cancel);
    const text = node.querySelector(".text");
    text.hidden = true;
    text.after(form);
    box.focus();
    const close = () => {
      form.remove();
      text.hidden = false;
    };
    cancel.addEventListener("click", close);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = box.value.trim();
      if (!value || value === node.messageText) return close();
      if (state.limits && Array.from(value).length > state.limits.max_text_chars) {
        showNotice(FRIENDLY_ERRORS.too_long(state.limits));
        return;
      }
      if (sendChange({ type: "edit", room: room.name, id, text: value, ref: `edit:${id}` })) close();
    });
  }

  function sendChange(frame) {
    if (send(frame)) return true;
    showNotice("You're not connected right now. Try again once you're back online.");
    return false;
  }

  // `edited` and `deleted` take ids of their own in the room's sequence (a re-join's `since`
  // covers them) and change the message they name, wherever it is on the page.
  function onEdited(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || !Number.isSafeInteger(frame.id) || !Number.isSafeInteger(frame.message)) return;
    room.lastId = Math.max(room.lastId, frame.id);
    const node = room.nodes.get(frame.message);
    if (!node || node.dataset.deleted || typeof frame.text !== "string") return;
    node.messageText = frame.text;
    node.querySelector(".text").replaceWith(textWithLinks(frame.text));
    showState(node, { edited_at: typeof frame.ts === "number" ? frame.ts : Date.now() / 1000 });
  }

  function onDeleted(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || !Number.isSafeInteger(frame.id) || !Number.isSafeInteger(frame.message)) return;
    room.lastId = Math.max(room.lastId, frame.id);
    const node = room.nodes.get(frame.message);
    if (node) showState(node, { deleted: true, deleted_by: frame.user });
  }

  // The first message after your read marker (not your own) gets a "New messages" divider,
  // kept until you move to another room.
  function markNewMessages(room) {
    room.list.querySelector(".new-divider")?.remove();
    for (const id of room.ids) {
      if (id <= room.lastRead) continue;
      const node = room.nodes.get(id);
      if (!node || !node.classList.contains("message") || node.dataset.user === state.user) continue;
      node.prepend(el("div", "new-divider", "New messages"));
      return;
    }
  }

  // The room in view, in a visible tab: read up to its newest id, said once it has been in
  // view a moment (the server keeps the highest; the user's other tabs and devices hear it).
  function noteSeen(room) {
    if (room.name !== state.current || document.visibilityState !== "visible" || !room.joined) return;
    if (room.lastId <= room.readSent || room.readTimer) return;
    room.readTimer = setTimeout(() => {
      room.readTimer = null;
      if (room.name !== state.current || document.visibilityState !== "visible" || !room.joined) return;
      if (room.lastId > room.readSent && send({ type: "read", room: room.name, id: room.lastId })) {
        room.readSent = room.lastId;
      }
    }, READ_AFTER_MS);
  }

  function onRead(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || !Number.isSafeInteger(frame.last_read)) return;
    room.lastRead = Math.max(room.lastRead, frame.last_read);
    room.readSent = Math.max(room.readSent, frame.last_read);
    if (room.lastRead >= room.lastId && room.unread) {
      room.unread = 0; // read in another tab or on another device
      renderRoomList();
    }
  }

  // A reconnect's replay skipped what retention removed before it was read: said in its place.
  function onGap(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || !Number.isSafeInteger(frame.after) || !Number.isSafeInteger(frame.resumes_at)) return;
    if (room.list.querySelector(`.gap[data-after="${frame.after}"]`)) return;
    const node = el("li", "event gap");
    node.dataset.after = String(frame.after);
    node.append(el("span", "event-text", "Older messages here were removed by the room's retention before you read them."));
    // between what you had and what is kept (not an entry: it takes no id)
    const next = room.ids.find((id) => id >= frame.resumes_at);
    room.list.insertBefore(node, next !== undefined ? room.nodes.get(next) : firstUnplaced(room));
  }

  function sendTyping() {
    const room = state.current ? state.rooms.get(state.current) : null;
    if (!room || !room.joined || !$("message-input").value.trim()) return;
    const now = Date.now();
    if (now - room.typingSentAt < TYPING_EVERY_MS) return;
    room.typingSentAt = now;
    send({ type: "typing", room: room.name });
  }

  function onTyping(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || typeof frame.user !== "string" || frame.user === state.user) return;
    const seconds = Number.isFinite(frame.expires_in) && frame.expires_in > 0 ? Math.min(frame.expires_in, 30) : 5;
    room.typing.set(frame.user, Date.now() + seconds * 1000);
    renderTyping();
    setTimeout(renderTyping, seconds * 1000 + 100); // and gone by itself
  }

  function renderTyping() {
    const line = $("typing-line");
    const room = state.current ? state.rooms.get(state.current) : null;
    const now = Date.now();
    const names = [];
    if (room) {
      for (const [user, until] of room.typing) {
        if (until > now) names.push(user);
        else room.typing.delete(user);
      }
    }
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    line.textContent = text;
  }

  // -- streamed messages (an application's text, arriving chunk by chunk) ------------------

  // A `stream` frame: a chunk (appended to the bubble), or with `whole` everything so far (it
  // replaces the bubble's text). The bubble has no id: it stays below the stored messages until
  // the finished `message` (with this `stream`) takes its place.
  function onStream(frame) {
    const room = state.rooms.get(frame.room);
    if (!room || typeof frame.stream !== "string" || typeof frame.text !== "string"
      || typeof frame.user !== "string" || !Number.isSafeInteger(frame.seq)) return;
    if (room.streamsDone.has(frame.stream)) return; // its message came first
    let preview = room.streams.get(frame.stream);
    if (preview && !frame.whole && frame.seq <= preview.seq) return;
    const text = frame.whole || !preview ? frame.text : preview.text + frame.text;
    const box = $("messages");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    if (!preview) {
      const node = messageNode({ user: frame.user, text, ts: Date.now() / 1000 }, false);
      node.dataset.state = "streaming";
      node.classList.add("streaming");
      room.list.append(node);
      regroup(node);
      updateEmpty(room);
      preview = { node, text, seq: frame.seq };
      room.streams.set(frame.stream, preview);
    } else {
      preview.node.querySelector(".text").replaceWith(textWithLinks(text));
    }
    preview.text = text;
    preview.seq = frame.seq;
    preview.node.messageText = text;
    if (room.name === state.current && nearBottom) box.scrollTop = box.scrollHeight;
  }

  // The finished message of a stream: its bubble goes (the message is placed by its id).
  function endStream(room, stream) {
    room.streamsDone.add(stream);
    const preview = room.streams.get(stream);
    if (preview) preview.node.remove();
    room.streams.delete(stream);
  }

  // -- messages --------------------------------------------------------------------------

  function messageNode(message, own) {
    const node = el("li", own ? "message own" : "message");
    node.append(avatar(message.user));
    const body = el("div", "body");
    const meta = el("div", "meta");
    meta.append(el("span", "author", message.user));
    // Published by an application (the server API): never mistaken for a user of that name.
    if (message.app === true) meta.append(el("span", "app-badge", "app"));
    meta.append(timeElement(message.ts));
    body.append(meta, textWithLinks(message.text));
    node.append(body, el("span", "status"));
    node.dataset.user = message.user;
    if (message.app === true) node.dataset.app = "true";
    node.dataset.ts = String(message.ts);
    node.messageText = message.text;
    showState(node, message);
    return node;
  }

  function validMessage(m) {
    return m && typeof m.room === "string" && Number.isSafeInteger(m.id) && typeof m.user === "string"
      && typeof m.text === "string" && typeof m.ts === "number";
  }

  function addMessage(message, { live }) {
    if (!validMessage(message)) return;
    const room = state.rooms.get(message.room);
    if (!room) return;
    if (live) room.lastId = Math.max(room.lastId, message.id);
    if (typeof message.stream === "string") endStream(room, message.stream);
    const existing = room.nodes.get(message.id);
    if (existing) {
      // Our own message whose ack came first: the server's time replaces the local one.
      existing.dataset.state = "sent";
      if (existing.dataset.ts !== String(message.ts)) {
        existing.dataset.ts = String(message.ts);
        existing.querySelector("time").replaceWith(timeElement(message.ts));
      }
      return;
    }
    const own = message.user === state.user && message.app !== true; // an app is never you
    if (own) {
      const index = room.orphans.findIndex((p) => p.text === message.text);
      if (index >= 0) {
        room.orphans[index].node.remove(); // it was stored after all: the replay brought it
        room.orphans.splice(index, 1);
      }
    }
    const box = $("messages");
    const visible = room.name === state.current;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    const node = messageNode(message, own);
    node.dataset.state = "sent";
    placeMessage(room, message.id, node);
    if (live && !visible && !own) {
      room.unread++;
      renderRoomList();
    }
    if (live && room.typing.delete(message.user)) renderTyping();
    if (visible && live && nearBottom) box.scrollTop = box.scrollHeight;
    if (live) noteSeen(room);
  }

  // Put `node` (a message with this id) in its place in id order, pending ones last.
  function placeMessage(room, id, node) {
    node.dataset.id = String(id);
    node.dataset.key = `${room.name}:${id}`;
    let low = 0;
    let high = room.ids.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (room.ids[mid] < id) low = mid + 1;
      else high = mid;
    }
    const next = low < room.ids.length ? room.nodes.get(room.ids[low]) : firstUnplaced(room);
    room.ids.splice(low, 0, id);
    room.nodes.set(id, node);
    room.list.insertBefore(node, next || null);
    if (node.classList.contains("message")) addActions(room, node);
    regroup(node);
    markDay(node);
    if (node.nextElementSibling) {
      regroup(node.nextElementSibling);
      markDay(node.nextElementSibling);
    }
    updateEmpty(room);
  }

  function firstUnplaced(room) {
    for (const node of room.list.children) {
      if (node.classList.contains("message") && !node.dataset.id) return node;
    }
    return null;
  }

  // A message right after one of the same author, within a few minutes, drops its avatar and name.
  function regroup(node) {
    if (!node.classList.contains("message")) return;
    const previous = node.previousElementSibling;
    const continued = previous && previous.classList.contains("message")
      && previous.dataset.user === node.dataset.user
      && Math.abs(Number(node.dataset.ts) - Number(previous.dataset.ts)) < GROUP_WINDOW_S;
    node.classList.toggle("continued", Boolean(continued));
  }

  // The first entry of a day (local time) carries that day's separator (drawn by the CSS from
  // `data-day`): decided against the entry before it, so history loaded above moves it.
  function markDay(node) {
    if (!node.dataset.ts) return;
    const day = new Date(Number(node.dataset.ts) * 1000).toDateString();
    let previous = node.previousElementSibling;
    while (previous && !previous.dataset.ts) previous = previous.previousElementSibling;
    const first = !previous || new Date(Number(previous.dataset.ts) * 1000).toDateString() !== day;
    if (first) node.dataset.day = dayLabel(Number(node.dataset.ts));
    else delete node.dataset.day;
  }

  function updateEmpty(room) {
    room.empty.hidden = !(room.historyDone && room.list.querySelector(".message, .event") === null);
  }

  function updateEarlier(room) {
    room.earlier.hidden = room.historyDone || room.ids.length === 0;
    updateEmpty(room);
  }

  function markFailed(pending, text, retryable = true) {
    const node = pending.node;
    node.dataset.state = "failed";
    const status = node.querySelector(".status");
    status.replaceChildren(el("span", "", text));
    if (retryable) {
      const retry = el("button", "link-button", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => retryMessage(pending));
      status.append(" ", retry);
    }
  }

  function retryMessage(pending) {
    if (state.connection !== "online") {
      showNotice("You're not connected. Your message can be retried once you're back online.");
      return;
    }
    const room = state.rooms.get(pending.room);
    if (!room) return;
    room.orphans = room.orphans.filter((p) => p !== pending);
    pending.node.remove();
    sendMessage(room, pending.text);
  }

  function sendMessage(room, text) {
    const ref = `m${++state.refSeq}-${Math.random().toString(36).slice(2, 8)}`;
    const node = messageNode({ user: state.user, text, ts: Date.now() / 1000 }, true);
    node.dataset.state = "pending";
    node.dataset.ref = ref;
    node.querySelector(".status").textContent = "Sending…";
    room.list.append(node);
    regroup(node);
    updateEmpty(room);
    const pending = { room: room.name, text, node };
    state.pending.set(ref, pending);
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
    // The `ack` and `error` frames are handled as they come (onAck, onError); what the promise adds
    // is the end of a say nobody answered: its timeout, or the connection dropping under it.
    const said = state.client ? state.client.say(room.name, text, { ref }) : Promise.reject(new Error("offline"));
    said.catch((error) => {
      if (state.pending.get(ref) !== pending) return; // answered already
      state.pending.delete(ref);
      markFailed(pending, error.code === "disconnected" ? "Not sent: the connection dropped." : "Not sent.", true);
      state.rooms.get(pending.room)?.orphans.push(pending);
    });
  }

  // -- rooms ------------------------------------------------------------------------------

  function ensureRoom(name) {
    let room = state.rooms.get(name);
    if (!room) {
      room = new Room(name);
      state.rooms.set(name, room);
      $("messages").append(room.list);
      saveRooms();
      renderRoomList();
      renderDirectory();
    }
    return room;
  }

  function removeRoom(name) {
    const room = state.rooms.get(name);
    if (!room) return;
    room.list.remove();
    state.rooms.delete(name);
    saveRooms();
    if (state.current === name) selectRoom(state.rooms.keys().next().value || null);
    renderRoomList();
    renderDirectory();
  }

  function joinRoom(name) {
    const existing = state.rooms.get(name);
    if (existing) {
      selectRoom(name);
      return;
    }
    const room = ensureRoom(name);
    if (state.connection === "online") sendJoin(room);
    selectRoom(name);
  }

  function leaveRoom(name) {
    const room = state.rooms.get(name);
    if (!room) return;
    if (state.client) {
      if (room.joined) state.client.leave(name);
      else state.client.forget(name); // not joined again on the next connection
    }
    for (const [ref, pending] of state.pending) if (pending.room === name) state.pending.delete(ref);
    removeRoom(name);
  }

  function selectRoom(name) {
    state.current = name;
    const room = name ? state.rooms.get(name) : null;
    for (const other of state.rooms.values()) other.list.hidden = other !== room;
    selectRoomTitle(name);
    $("message-input").placeholder = name ? `Message ${signOf(name)}${labelOf(name)}` : "Join a room to chat";
    $("message-input").disabled = !name; // the invite form: renderMembers (it needs your role)
    renderComposer();
    for (const other of state.rooms.values()) {
      if (other !== room) other.list.querySelector(".new-divider")?.remove(); // seen: gone when you move on
    }
    if (room) {
      if (room.roles.size === 0) askRoles(room);
      if (room.unread > 0) markNewMessages(room);
      room.unread = 0;
      const box = $("messages");
      box.scrollTop = box.scrollHeight;
      noteSeen(room);
    }
    renderTyping();
    renderRoomList();
    renderMembers();
    closeDrawers();
  }

  // A feed's members only read: its line replaces the composer while it is the current room.
  function renderComposer() {
    const room = state.current ? state.rooms.get(state.current) : null;
    const feed = Boolean(room && room.feed);
    $("composer").hidden = feed;
    $("feed-note").hidden = !feed;
  }

  function renderRoomList() {
    const list = $("room-list");
    const items = [];
    let unreadTotal = 0;
    for (const room of state.rooms.values()) {
      unreadTotal += room.unread;
      const item = el("li", "room-item");
      item.dataset.room = room.name;
      const open = el("button", "room-button");
      open.type = "button";
      if (room.name === state.current) open.setAttribute("aria-current", "true");
      open.append(el("span", "hash", signOf(room.name)), el("span", "room-label", labelOf(room.name)));
      if (room.unread > 0) open.append(el("span", "unread", room.unread > 99 ? "99+" : String(room.unread)));
      open.addEventListener("click", () => selectRoom(room.name));
      const leave = el("button", "leave-button", "×");
      leave.type = "button";
      leave.title = `Leave #${room.name}`;
      leave.setAttribute("aria-label", `Leave ${room.name}`);
      leave.addEventListener("click", () => leaveRoom(room.name));
      item.append(open, leave);
      items.push(item);
    }
    if (items.length === 0) items.push(el("li", "room-empty", "No rooms yet: join one below."));
    list.replaceChildren(...items);
    document.title = unreadTotal ? `(${unreadTotal}) rawws chat` : "rawws chat";
  }

  function setMembers(name, users, roles) {
    const room = state.rooms.get(name);
    if (!room || !Array.isArray(users)) return;
    room.members = new Set(users.filter((u) => typeof u === "string"));
    if (roles && typeof roles === "object") {
      for (const [user, role] of Object.entries(roles)) if (typeof role === "string") room.roles.set(user, role);
    }
    if (room.name === state.current) renderMembers();
  }

  function renderMembers() {
    const room = state.current ? state.rooms.get(state.current) : null;
    const names = room ? [...room.members].sort((a, b) => a.localeCompare(b)) : [];
    const items = names.map((name) => {
      const item = el("li", "member");
      item.dataset.user = name;
      if (name === state.user) {
        item.append(avatar(name, "avatar small"), el("span", "member-name", name));
      } else { // a click opens the direct room of you two
        const open = el("button", "member-open");
        open.type = "button";
        open.title = `Message ${name} directly`;
        open.append(avatar(name, "avatar small"), el("span", "member-name", name));
        open.addEventListener("click", () => openDirect(name));
        item.append(open);
      }
      const role = room.roles.get(name);
      if (role) item.append(el("span", "role", role));
      if (name === state.user) item.append(el("span", "you", "you"));
      else {
        const controls = moderationControls(room, name);
        if (controls) item.append(controls);
      }
      return item;
    });
    $("member-list").replaceChildren(...items);
    // Inviting is for the owner and moderators: hidden once the page knows you are neither.
    const role = room ? myRole(room) : null;
    $("invite-form").hidden = !room || kindOf(room.name) !== "private" || (role !== null && (ROLE_RANK[role] || 0) < ROLE_RANK.moderator);
    const part = $("leave-for-good");
    part.hidden = !room || kindOf(room.name) === "direct" || role === "owner";
    part.disabled = Boolean(room && state.parting.has(room.name));
    if (room) {
      part.title = kindOf(room.name) === "private"
        ? `Stop being a member of ${room.name}: only a new invitation lets you back in`
        : `Stop being a member of #${room.name}: joining it again starts afresh`;
    }
    $("member-count").textContent = String(names.length);
    $("member-count-badge").textContent = String(names.length);
  }

  // -- narrow screens: rooms and people slide in ----------------------------------------

  function toggleDrawer(which) {
    const view = $("chat-view");
    const open = !view.classList.contains(`${which}-open`);
    closeDrawers();
    if (open) {
      view.classList.add(`${which}-open`);
      $(which === "rooms" ? "toggle-rooms" : "toggle-members").setAttribute("aria-expanded", "true");
      $("scrim").hidden = false;
    }
  }

  function closeDrawers() {
    const view = $("chat-view");
    view.classList.remove("rooms-open", "members-open");
    $("toggle-rooms").setAttribute("aria-expanded", "false");
    $("toggle-members").setAttribute("aria-expanded", "false");
    $("scrim").hidden = true;
  }

  // -- wiring -------------------------------------------------------------------------------

  function submitComposer() {
    const input = $("message-input");
    const text = input.value;
    if (!text.trim()) return;
    const room = state.current ? state.rooms.get(state.current) : null;
    if (!room) {
      showNotice("Join a room first.");
      return;
    }
    if (state.limits && Array.from(text).length > state.limits.max_text_chars) {
      showNotice(FRIENDLY_ERRORS.too_long(state.limits));
      return;
    }
    if (state.connection !== "online") {
      showNotice("You're not connected right now. Your message is still in the box: send it once you're back online.");
      return;
    }
    sendMessage(room, text);
    input.value = "";
    updateLength();
  }

  function init() {
    $("tab-login").addEventListener("click", () => selectTab("login"));
    $("tab-register").addEventListener("click", () => selectTab("register"));
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submitAuth(event.currentTarget, "login");
    });
    $("register-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submitAuth(event.currentTarget, "register");
    });
    $("logout").addEventListener("click", () => stopChat("You're signed out.", { logout: true }));
    $("retry-now").addEventListener("click", () => state.client?.reconnectNow());
    $("notice-close").addEventListener("click", hideNotice);
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      submitComposer();
    });
    $("message-input").addEventListener("input", () => {
      updateLength();
      sendTyping();
    });
    $("messages").addEventListener("click", onMessageAction);
    document.addEventListener("visibilitychange", () => {
      const room = state.current ? state.rooms.get(state.current) : null;
      if (room) noteSeen(room);
    });
    $("message-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submitComposer();
      }
    });
    $("join-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.currentTarget;
      const input = $("join-room");
      const name = input.value.trim().replace(/^#/, "").toLowerCase();
      if (!name) return;
      if (!validRoom(name)) {
        formError(form, FRIENDLY_ERRORS.bad_room(state.limits));
        return;
      }
      const most = state.limits ? state.limits.max_rooms_per_connection : Infinity;
      if (!state.rooms.has(name) && state.rooms.size >= most) {
        formError(form, FRIENDLY_ERRORS.too_many_rooms(state.limits));
        return;
      }
      formError(form, "");
      input.value = "";
      joinRoom(name);
    });
    $("create-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("create-room");
      const name = input.value.trim().toLowerCase();
      if (!name) return;
      input.value = "";
      send({ type: "create", room: name, kind: "private", ref: "create" }); // the server checks the name
    });
    $("leave-for-good").addEventListener("click", leaveForGood);
    $("invite-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("invite-user");
      const user = input.value.trim();
      if (!user || !state.current) return;
      input.value = "";
      send({ type: "invite", room: state.current, user, ref: "invite" });
    });
    $("toggle-rooms").addEventListener("click", () => toggleDrawer("rooms"));
    $("toggle-members").addEventListener("click", () => toggleDrawer("members"));
    $("scrim").addEventListener("click", closeDrawers);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeDrawers();
    });
    window.addEventListener("online", () => {
      if (state.client && !state.client.online) state.client.reconnectNow();
    });
    window.addEventListener("offline", () => {
      if (state.client && !state.client.online) setConnection("offline");
    });

    storage("remove", STORAGE.refresh); // kept there by pages before the cookie session
    const token = storage("get", STORAGE.token);
    const user = storage("get", STORAGE.user);
    const expiresAt = Number(storage("get", STORAGE.expiresAt)) || 0;
    const expiresIn = expiresAt ? Math.max(1, (expiresAt - Date.now()) / 1000) : 0;
    if (token && user) {
      const client = newClient();
      client.useTokens({ access_token: token, expires_in: expiresIn });
      startChat(client, user);
    } else {
      signInByCookie();
    }
  }

  // A new tab or a restarted browser: the refresh cookie, if the browser has one, signs in.
  async function signInByCookie() {
    try {
      const client = newClient();
      if ((await client.renew()) && typeof client.user === "string") {
        startChat(client, client.user);
        return;
      }
    } catch (_) {
      // the server is unreachable: the form says so when it is used
    }
    showAuth();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
