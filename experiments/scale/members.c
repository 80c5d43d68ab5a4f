/* One load process of the scale study in C: members.py's members, commands and report, less CPU.
 *
 *   members --port P --token T --room R --count N --source 127.0.0.2
 *
 * A delivery cost the Python/uvloop client 7.4 us of CPU against the server's 15 on the same two
 * cores, so the client's own CPU delayed the deliveries it measured. Here one edge-triggered
 * epoll loop reads each ready socket until a short read, parses the RFC 6455 frames (unmasked,
 * 7/16/64-bit lengths) and finds the room's id and the stamp "seq N at T" of each message as
 * members.py's regular expression does (T: the sender's CLOCK_MONOTONIC in us). It sends members.py's bytes
 * (upgrade_request with the bearer token, a masked join frame), checks the 101, tries a refused
 * or cut join again (TRIES in all, counted), answers pings with masked pongs, and speaks
 * members.py's protocol on stdin/stdout: "ready N", then "start", "count" and "report". */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#define BATCH 100           /* connections opened at once */
#define TRIES 3             /* attempts per member before the process gives up */
#define RETRY_AFTER_US 1000000
#define JOIN_TIMEOUT_US 120000000LL
#define READ_BYTES (256 * 1024)
#define NO_ARRIVAL (-1000)  /* us: members.py's "latency > get(seq, -1.0)" */
#define STDIN_TAG UINT32_MAX
/* After a wait that found fewer than COALESCE_EVENTS sockets ready, a pause of COALESCE_NS lets
 * more arrive before the next: a wake-up per few frames cost more CPU than the frames themselves
 * (3.3 us per delivery, 1.4 with the pause, 10,000 members), and a frame is read 0.25 ms late. */
#define COALESCE_EVENTS 64
#define COALESCE_NS 250000

enum state { IDLE, CONNECTING, UPGRADING, JOINING, JOINED, RETRYING, CLOSED };

typedef struct {
    int fd, state, attempts, out_watched; /* out_watched: registered for EPOLLOUT */
    uint64_t last, count;        /* the last room id seen, deliveries since "start" */
    char *buf, *out;             /* not parsed yet (a head or frame unfinished); not sent yet */
    size_t len, cap, out_len, out_cap;
    int64_t deadline_us;         /* join timeout, or when to try again */
} Member;

static struct { int port, count; const char *token, *room, *source; } args = {
    0, 0, "", "big", "127.0.0.1"};
static Member *members;
static int epfd;
static char scratch[READ_BYTES];
/* The tally, as members.py's Tally: latencies (us), the slowest arrival per seq, the counters. */
static int64_t *latencies, *last_arrival; /* last_arrival by seq; NO_ARRIVAL where none came */
static size_t n_latencies, cap_latencies, cap_arrival;
static uint64_t out_of_order, retries;
static char last_refusal[256];

static int64_t now_us(void) { /* Python's time.monotonic_ns() // 1000: the sender's clock */
    struct timespec t;
    return clock_gettime(CLOCK_MONOTONIC, &t), (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void die(const char *what) { fprintf(stderr, "members: %s\n", what), exit(1); }

static void *grow(void *ptr, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return ptr;
    for (*cap = *cap ? *cap : 64; *cap < need;) *cap *= 2;
    if (!(ptr = realloc(ptr, *cap * size))) die("out of memory");
    return ptr;
}

static void record(Member *m, uint64_t id, uint64_t seq, int64_t latency_us) {
    latencies = grow(latencies, &cap_latencies, n_latencies + 1, sizeof *latencies);
    latencies[n_latencies++] = latency_us;
    if (seq < (1u << 22)) { /* a seq beyond any run's messages is counted, not mapped */
        size_t old = cap_arrival;
        last_arrival = grow(last_arrival, &cap_arrival, seq + 1, sizeof *last_arrival);
        for (size_t i = old; i < cap_arrival; i++) last_arrival[i] = NO_ARRIVAL;
        if (latency_us > last_arrival[seq]) last_arrival[seq] = latency_us;
    }
    if (id != m->last + 1 && m->last) out_of_order++; /* the room's ids go up by one */
    m->last = id, m->count++;
}

/* Digits at *p (at least one), advancing it: the regex's (\d+). */
static int digits(const char **p, const char *end, uint64_t *value) {
    const char *start = *p;
    for (*value = 0; *p < end && isdigit((unsigned char)**p); ++*p)
        *value = *value * 10 + (uint64_t)(**p - '0');
    return *p > start;
}

/* Every stamp "id":I,…"text":"seq N at T" in a text frame's payload (I: the room's id). */
static void find_stamps(Member *m, const char *p, size_t len, int64_t now) {
    static const char prefix[] = "\"text\":\"seq ";
    const size_t plen = sizeof prefix - 1;
    const char *end = p + len, *hit, *idp;
    uint64_t seq, sent, id;
    while ((hit = memmem(p, (size_t)(end - p), prefix, plen)) != NULL) {
        const char *q = hit + plen;
        int found = (idp = memmem(p, (size_t)(hit - p), "\"id\":", 5)) != NULL &&
                    (idp += 5, digits(&idp, hit, &id)) && digits(&q, end, &seq) && end - q >= 4 &&
                    memcmp(q, " at ", 4) == 0 && (q += 4, digits(&q, end, &sent)) && q < end && *q == '"';
        if (found) record(m, id, seq, now - (int64_t)sent);
        p = found ? q + 1 : hit + 1;
    }
}

static void watch(Member *m, int op) {
    uint32_t events = m->state == CONNECTING ? EPOLLOUT : m->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN;
    struct epoll_event ev = {.events = EPOLLET | events, .data.u32 = (uint32_t)(m - members)};
    m->out_watched = (ev.events & EPOLLOUT) != 0;
    if (epoll_ctl(epfd, op, m->fd, &ev) < 0) die("epoll_ctl failed");
}

static void drop(Member *m, int state) {
    if (m->fd >= 0) close(m->fd);
    m->fd = -1, m->state = state, m->len = m->out_len = 0;
}

/* What goes between JSON quotes unescaped: a quote, backslash or control byte becomes '?'. */
static void json_safe(char *s) {
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) *s = '?';
}

/* A join refused or cut: tried again a second later, or the process gives up as members.py does. */
static void fail(Member *m, const char *why) {
    drop(m, RETRYING);
    if (m->attempts >= TRIES) {
        fprintf(stderr, "members: a member could not join after %d tries: %s\n", TRIES, why);
        exit(1);
    }
    retries++;
    snprintf(last_refusal, sizeof last_refusal, "%s", why);
    json_safe(last_refusal);
    m->deadline_us = now_us() + RETRY_AFTER_US;
}

/* The connection ended: a member that had joined stays counted; one joining tries again. */
static void lost(Member *m, const char *why) {
    if (m->state == JOINED) drop(m, CLOSED);
    else fail(m, why);
}

static void fail_errno(Member *m, int err) {
    char why[160];
    snprintf(why, sizeof why, "[Errno %d] %s", err, strerror(err));
    fail(m, why);
}

/* Flush what the socket has not taken; 0 if the connection is gone. */
static int flush(Member *m) {
    size_t off = 0;
    while (off < m->out_len) {
        ssize_t n = send(m->fd, m->out + off, m->out_len - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) return 0;
        off += (size_t)n;
    }
    memmove(m->out, m->out + off, m->out_len -= off);
    if (m->state != CONNECTING && (m->out_len > 0) != m->out_watched) watch(m, EPOLL_CTL_MOD);
    return 1;
}

static void queue(Member *m, const void *data, size_t len) {
    m->out = grow(m->out, &m->out_cap, m->out_len + len, 1);
    memcpy(m->out + m->out_len, data, len);
    m->out_len += len;
}

/* A client frame, masked as RFC 6455 5.3 requires (a random key per frame). */
static void queue_frame(Member *m, int opcode, const char *payload, size_t len) {
    size_t hlen = len <= 125 ? 2 : 4; /* the join frame of a long --room takes 16 bits */
    unsigned char key[4], head[8] = {(unsigned char)(0x80 | opcode),
                                     (unsigned char)(0x80 | (len <= 125 ? len : 126)),
                                     (unsigned char)(len >> 8), (unsigned char)len};
    if (getrandom(key, sizeof key, 0) != sizeof key) die("getrandom failed");
    memcpy(head + hlen, key, 4);
    queue(m, head, hlen + 4);
    queue(m, payload, len);
    for (size_t i = 0; i < len; i++) m->out[m->out_len - len + i] ^= (char)key[i % 4];
}

/* members.py's bytes: upgrade_request(port, "/ws", token=token) + masked_frame(0x1, join). */
static void queue_join(Member *m) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char raw[17] = {0};
    char key[25] = {0}, request[4096], join[600];
    if (getrandom(raw, 16, 0) != 16) die("getrandom failed");
    for (int i = 0; i < 24; i++) /* base64 of 16 random bytes: 22 digits, then "==" */
        key[i] = i < 22 ? b64[(raw[i * 6 / 8] << 8 | raw[i * 6 / 8 + 1]) >> (10 - i * 6 % 8) & 63]
                        : '=';
    int n = snprintf(request, sizeof request,
                     "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
                     args.port, key, args.token);
    if (n >= (int)sizeof request) die("--token too long");
    queue(m, request, (size_t)n);
    n = snprintf(join, sizeof join, "{\"type\": \"join\", \"room\": \"%s\"}", args.room);
    queue_frame(m, 0x1, join, (size_t)n);
}

static void open_member(Member *m) {
    struct sockaddr_in local = {.sin_family = AF_INET}, server = {.sin_family = AF_INET};
    m->attempts++;
    m->deadline_us = now_us() + JOIN_TIMEOUT_US;
    m->last = m->count = 0;
    m->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->fd < 0) return fail_errno(m, errno);
    inet_pton(AF_INET, args.source, &local.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
    server.sin_port = htons((uint16_t)args.port);
    if (bind(m->fd, (struct sockaddr *)&local, sizeof local) < 0) return fail_errno(m, errno);
    if (connect(m->fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS)
        return fail_errno(m, errno);
    m->state = CONNECTING;
    watch(m, EPOLL_CTL_ADD);
}

/* A server frame's header: its length and payload size; 0 while the header is not all there. */
static size_t frame_head(const unsigned char *b, size_t len, uint64_t *size) {
    if (len < 2) return 0;
    size_t extra = (b[1] & 0x7f) == 126 ? 2 : (b[1] & 0x7f) == 127 ? 8 : 0;
    if (len < 2 + extra + (b[1] & 0x80 ? 4 : 0)) return 0;
    *size = extra ? 0 : b[1] & 0x7f;
    for (size_t i = 0; i < extra; i++) *size = *size << 8 | b[2 + i];
    return 2 + extra + (b[1] & 0x80 ? 4 : 0);
}

/* How many more bytes complete the unit that starts the member's buffer (its head, or a frame). */
static size_t missing(const Member *m) {
    uint64_t size;
    if (m->state == UPGRADING) return SIZE_MAX;
    size_t head = frame_head((const unsigned char *)m->buf, m->len, &size);
    if (!head) return m->len < 2 ? 2 - m->len : 1;
    return head + size > m->len ? (size_t)(head + size - m->len) : 1;
}

/* Parse what arrived: the 101, then whole frames; bytes used, or SIZE_MAX if the member is gone. */
static size_t parse(Member *m, char *data, size_t len, int64_t now) {
    size_t at = 0;
    if (m->state == UPGRADING) {
        char *end = memmem(data, len, "\r\n\r\n", 4);
        if (!end) return 0;
        if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) {
            char line[120];
            size_t n = strcspn(data, "\r");
            snprintf(line, sizeof line, "%.*s", (int)(n < 100 ? n : 100), data);
            return fail(m, line), SIZE_MAX;
        }
        m->state = JOINING;
        at = (size_t)(end - data) + 4;
    }
    for (;;) {
        uint64_t size;
        unsigned char *b = (unsigned char *)data + at;
        size_t head = frame_head(b, len - at, &size);
        if (!head || size > len - at - head) return at;
        char *payload = data + at + head;
        if (b[1] & 0x80) /* a server must not mask; unmasked anyway rather than misread */
            for (uint64_t i = 0; i < size; i++) payload[i] ^= (char)b[head - 4 + i % 4];
        int opcode = b[0] & 0x0f;
        if (opcode == 0x1 || opcode == 0x0) {
            if (m->state == JOINING && memmem(payload, size, "\"joined\"", 8)) m->state = JOINED;
            find_stamps(m, payload, size, now);
        } else if (opcode == 0x9 && size <= 125) {
            queue_frame(m, 0xA, payload, size);
            if (!flush(m)) size = SIZE_MAX;
        } else if (opcode == 0x8) {
            size = SIZE_MAX;
        }
        if (size == SIZE_MAX) return lost(m, "closed before joining"), SIZE_MAX;
        at += head + size;
    }
}

static void append(Member *m, const char *data, size_t len) {
    m->buf = grow(m->buf, &m->cap, m->len + len, 1);
    memcpy(m->buf + m->len, data, len);
    m->len += len;
}

/* One read from a ready socket. What completes the buffered unit is moved to the buffer, no more,
 * so a member's buffer holds at most one unfinished frame; the rest is parsed where it was read. */
static int on_readable(Member *m) {
    ssize_t got = recv(m->fd, scratch, sizeof scratch, 0);
    if (got < 0 && errno == EINTR) return 1;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (got < 0 && m->state != JOINED) return fail_errno(m, errno), 0;
    if (got <= 0)
        return lost(m, m->state == UPGRADING ? "closed before joining: before the 101"
                                             : "closed before joining: after the 101"), 0;
    int64_t now = now_us();
    char *data = scratch;
    size_t left = (size_t)got, used;
    while (left && m->len) {
        size_t take = missing(m);
        take = take < left ? take : left;
        append(m, data, take);
        data += take;
        left -= take;
        if ((used = parse(m, m->buf, m->len, now)) == SIZE_MAX) return 0;
        memmove(m->buf, m->buf + used, m->len -= used);
    }
    if (left && (used = parse(m, data, left, now)) == SIZE_MAX) return 0;
    if (left) append(m, data + used, left - used);
    return got == (ssize_t)sizeof scratch; /* a short read emptied it: the next edge wakes us */
}

static void on_event(Member *m, uint32_t events) {
    if (m->state == CONNECTING) {
        int err = 0;
        socklen_t size = sizeof err;
        getsockopt(m->fd, SOL_SOCKET, SO_ERROR, &err, &size);
        if (err) return fail_errno(m, err);
        m->state = UPGRADING;
        queue_join(m);
        m->out_watched = -1; /* registered for EPOLLOUT alone: flush sets EPOLLIN too */
        if (!flush(m)) fail(m, "closed before joining: cut while sending the request");
        return;
    }
    if ((events & EPOLLOUT) && m->out_len && !flush(m))
        return lost(m, "closed before joining: cut while sending");
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        while (on_readable(m) && m->fd >= 0) continue;
}

static void on_command(char *line);

/* One epoll_wait, every ready member and stdin served. */
static void poll_once(int timeout_ms) {
    static struct epoll_event events[1024];
    int n = epoll_wait(epfd, events, 1024, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait failed");
    for (int i = 0; i < n; i++) {
        if (events[i].data.u32 == STDIN_TAG) {
            static char line[4096];
            static size_t have;
            ssize_t got = read(0, line + have, sizeof line - 1 - have);
            if (got <= 0) exit(0); /* the study went away */
            have += (size_t)got;
            char *nl;
            while ((nl = memchr(line, '\n', have)) != NULL) {
                *nl = 0;
                on_command(line);
                have -= (size_t)(nl + 1 - line);
                memmove(line, nl + 1, have);
            }
            if (have == sizeof line - 1) have = 0; /* no command is that long */
        } else {
            Member *m = &members[events[i].data.u32];
            if (m->fd >= 0) on_event(m, events[i].events);
        }
    }
    if (n >= 0 && n < COALESCE_EVENTS) { /* few ready: let more arrive before the next wait */
        struct timespec pause = {0, COALESCE_NS};
        nanosleep(&pause, NULL);
    }
}

/* Members open BATCH at a time; a batch is done when every member in it has joined. */
static void open_all(void) {
    for (int start = 0; start < args.count; start += BATCH) {
        int end = start + BATCH < args.count ? start + BATCH : args.count;
        for (int i = start; i < end; i++) open_member(&members[i]);
        for (;;) {
            int64_t now = now_us(), next = now + 1000000;
            int waiting = 0;
            for (int i = start; i < end; i++) {
                Member *m = &members[i];
                if (m->state == RETRYING && m->deadline_us <= now) open_member(m);
                else if (m->state >= CONNECTING && m->state <= JOINING && m->deadline_us <= now)
                    fail(m, "timed out joining");
                if (m->state == JOINED || m->state == CLOSED) continue;
                waiting++;
                if (m->deadline_us < next) next = m->deadline_us;
            }
            if (!waiting) break;
            poll_once(next > now ? (int)((next - now + 999) / 1000) : 0);
        }
    }
}

static double cpu_at_start;

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static uint64_t received(void) {
    uint64_t total = 0;
    for (int i = 0; i < args.count; i++) total += members[i].count;
    return total;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* members.py's report: one JSON line with the same fields, the latencies in ms. */
static void report(void) {
    double cpu = cpu_s() - cpu_at_start;
    uint64_t *counts = malloc(sizeof *counts * (size_t)(args.count ? args.count : 1));
    if (!counts) die("out of memory");
    for (int i = 0; i < args.count; i++) counts[i] = members[i].count;
    qsort(counts, (size_t)args.count, sizeof *counts, by_value);
    printf("{\"members\": %d, \"counts\": [", args.count);
    for (int i = 0; i < args.count; i++) /* the distinct counts, as sorted({m.count ...}) */
        if (i == 0 || counts[i] != counts[i - 1])
            printf(i ? ", %llu" : "%llu", (unsigned long long)counts[i]);
    printf("], \"received\": %llu, \"out_of_order\": %llu, \"retries\": %llu, "
           "\"last_refusal\": \"%s\", \"latencies_ms\": [",
           (unsigned long long)received(), (unsigned long long)out_of_order,
           (unsigned long long)retries, last_refusal);
    for (size_t i = 0; i < n_latencies; i++)
        printf(i ? ", %.3f" : "%.3f", (double)latencies[i] / 1000.0);
    printf("], \"last_arrival_ms\": {");
    for (size_t seq = 0, first = 1; seq < cap_arrival; seq++)
        if (last_arrival[seq] > NO_ARRIVAL)
            printf(first ? "\"%zu\": %.3f" : ", \"%zu\": %.3f", seq,
                   (double)last_arrival[seq] / 1e3), first = 0;
    printf("}, \"cpu_s\": %.6f}\n", cpu);
    fflush(stdout);
    exit(0);
}

/* A line from the study, compared once stripped, as members.py compares it. */
static void on_command(char *line) {
    size_t n = strlen(line);
    while (n && isspace((unsigned char)line[n - 1])) line[--n] = 0;
    while (isspace((unsigned char)*line)) line++;
    if (!strcmp(line, "report")) report();
    if (!*line) exit(0); /* a blank line: the study went away */
    if (!strcmp(line, "count")) {
        printf("%llu\n", (unsigned long long)received());
        fflush(stdout);
    } else if (!strcmp(line, "start")) {
        n_latencies = out_of_order = 0;
        for (size_t seq = 0; seq < cap_arrival; seq++) last_arrival[seq] = NO_ARRIVAL;
        for (int i = 0; i < args.count; i++) members[i].count = members[i].last = 0;
        cpu_at_start = cpu_s();
    }
}

static const char USAGE[] =
    "usage: members --port P --token T [--room R] --count N [--source ADDR]\n\n"
    "One load process of the scale study (members.py's commands and report, in C).\n";

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (!value) break;
        if (!strcmp(flag, "--port")) args.port = atoi(value);
        else if (!strcmp(flag, "--token")) args.token = value;
        else if (!strcmp(flag, "--room")) args.room = value;
        else if (!strcmp(flag, "--count")) args.count = atoi(value);
        else if (!strcmp(flag, "--source")) args.source = value;
        else break;
        i++;
    }
    struct in_addr probe;
    if (args.port <= 0 || args.count < 0 || !*args.token || strlen(args.room) > 500 ||
        strpbrk(args.room, "\"\\") || inet_pton(AF_INET, args.source, &probe) != 1) {
        fputs(USAGE, stderr);
        return 2;
    }
    struct rlimit files; /* one descriptor per member: the soft limit up to the hard one */
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max == RLIM_INFINITY ? 1048576 : files.rlim_max; /* nr_open */
        setrlimit(RLIMIT_NOFILE, &files);
    }
    signal(SIGPIPE, SIG_IGN);
    static char out_buffer[1 << 20];
    setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
    members = calloc((size_t)(args.count ? args.count : 1), sizeof *members);
    if (!members || (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) die("cannot start");
    for (int i = 0; i < args.count; i++) members[i].fd = -1;
    open_all();
    printf("ready %d\n", args.count);
    fflush(stdout);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) < 0) die("cannot watch stdin");
    cpu_at_start = cpu_s();
    for (;;) poll_once(-1);
}
