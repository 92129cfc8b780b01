/*
 * A peer: libwebsockets (Debian's libwebsockets-dev, 4.1 in bookworm), written the way its
 * documentation and minimal examples use it, tuned as its documentation suggests for
 * throughput.
 *
 *   bench_lws --url URL --workload rr|pipe|idle|free [--kind text|binary] [--size N]
 *             [--window N] [--duration S] [--warmup S] [--conns N] [--iters N] [--settle S]
 *
 * - One lws_context, no listening port, lws's own poll() event loop (lws_service) on the main
 *   thread; one protocol handler bound with local_protocol_name (no subprotocol on the wire).
 * - Sending only from LWS_CALLBACK_CLIENT_WRITEABLE, requested with lws_callback_on_writable;
 *   one lws_write per message from a buffer with LWS_PRE bytes of headroom, so lws writes the
 *   frame header in place without a copy. A client masks its frames and lws masks the payload
 *   in place, so the payload is copied into that buffer before each write (one memcpy).
 * - Pipelined: within one WRITEABLE callback the client writes messages while the window has
 *   room and lws_send_pipe_choked() says the socket takes more (the documented way to write
 *   more than once per callback); otherwise it asks for the next WRITEABLE. lws does not
 *   coalesce: every lws_write is one send().
 * - Receiving: LWS_CALLBACK_CLIENT_RECEIVE; a message is complete when
 *   lws_is_final_fragment() and lws_remaining_packet_payload() == 0.
 * - Settings: pt_serv_buf_size 128 KiB and rx_buffer_size 128 KiB (the defaults are 4 KiB,
 *   which split a 64 KiB message into 16 reads and its sends into 4 KiB pieces that lws
 *   buffers; lws's documentation suggests 128 KiB "to improve throughput", and 128 KiB is
 *   tungstenite's read buffer, which the raw client gets). No extensions (no
 *   permessage-deflate), no TLS.
 *
 * Output protocol (read by bench/run.py): "MARK start", "MARK end", "RESULT {json}".
 */
#define _GNU_SOURCE
#include <libwebsockets.h>
#include <stdbool.h>

#include "peer_common.h"

#define BUF_SIZE (128 * 1024)

struct conn {
    struct lws *wsi;
    bool established, closed, closing;
    bool running, rr, stopping, finished, writable_requested, send_due;
    uint64_t deadline, t0, last;
    uint64_t sent, received, bytes;
    uint64_t *samples;
    size_t nsamples, cap;
};

static struct lws_context *CTX;
static unsigned char *PAYLOAD;
static unsigned char *BUF; /* LWS_PRE + size: lws writes the header into the headroom */
static size_t ESTABLISHED, FAILED;

static void request_writable(struct conn *c) {
    if (!c->writable_requested) {
        c->writable_requested = true;
        lws_callback_on_writable(c->wsi);
    }
}

static void write_one(struct conn *c) {
    memcpy(BUF + LWS_PRE, PAYLOAD, PA.size);
    int n = lws_write(c->wsi, BUF + LWS_PRE, PA.size, PA.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    if (n < (int)PA.size) peer_die("lws_write returned %d", n);
    c->sent++;
}

static void on_writeable(struct conn *c) {
    c->writable_requested = false;
    if (!c->running) return;
    if (c->rr) {
        if (c->send_due) {
            c->send_due = false;
            c->t0 = peer_now_ns();
            write_one(c);
        }
        return;
    }
    if (c->stopping) return;
    if (peer_now_ns() >= c->deadline) {
        c->stopping = true;
        if (c->received == c->sent) c->finished = true;
        return;
    }
    while (c->sent - c->received < PA.window) {
        write_one(c);
        if (lws_send_pipe_choked(c->wsi)) break;
    }
    if (c->sent - c->received < PA.window) request_writable(c);
}

/* A whole message came back. */
static void on_message(struct conn *c) {
    c->received++;
    if (!c->running) return;
    uint64_t now = peer_now_ns();
    c->last = now;
    if (c->rr) {
        if (c->nsamples < c->cap) c->samples[c->nsamples++] = now - c->t0;
        if (now >= c->deadline) {
            c->finished = true;
        } else {
            c->send_due = true;
            request_writable(c);
        }
        return;
    }
    if (c->stopping) {
        if (c->received == c->sent) c->finished = true;
    } else {
        request_writable(c);
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    struct conn *c = (struct conn *)user;
    (void)in;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        FAILED++;
        if (c) c->closed = true;
        fprintf(stderr, "lws: connection error: %s\n", in ? (const char *)in : "?");
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->established = true;
        ESTABLISHED++;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        c->bytes += len;
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) on_message(c);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c->closing) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1; /* lws sends the close frame and waits for the server's */
        }
        on_writeable(c);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c) c->closed = true;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols PROTOCOLS[] = {
    {"bench", callback, 0, BUF_SIZE, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void context_new(void) {
    struct lws_context_creation_info info;
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = PROTOCOLS;
    info.pt_serv_buf_size = BUF_SIZE;
    info.gid = -1;
    info.uid = -1;
    CTX = lws_create_context(&info);
    if (!CTX) peer_die("lws_create_context failed");
}

static void connect_start(struct conn *c) {
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = CTX;
    ci.address = PA.host;
    ci.port = PA.port;
    ci.path = PA.path;
    ci.host = PA.host;
    ci.origin = PA.host;
    ci.protocol = NULL; /* no Sec-WebSocket-Protocol: the bench server speaks none */
    ci.local_protocol_name = "bench";
    ci.userdata = c;
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci)) peer_die("lws_client_connect_via_info failed");
}

static void connect_one(struct conn *c) {
    connect_start(c);
    uint64_t limit = peer_now_ns() + 20000000000ull;
    while (!c->established) {
        if (c->closed) peer_die("could not connect to %s", PA.url);
        lws_service(CTX, 0);
        if (peer_now_ns() > limit) peer_die("not connected in time");
    }
}

/* One measured (or warm-up) phase; returns its start time, c->last is the last completion. */
static uint64_t phase(struct conn *c, double seconds) {
    uint64_t start = peer_now_ns();
    c->deadline = start + (uint64_t)(seconds * 1e9);
    c->sent = c->received = c->bytes = 0;
    c->nsamples = 0;
    c->stopping = c->finished = false;
    c->last = start;
    c->running = true;
    if (c->rr) c->send_due = true;
    request_writable(c);
    uint64_t limit = c->deadline + 20000000000ull;
    while (!c->finished) {
        lws_service(CTX, 0);
        if (c->closed) peer_die("connection closed during the run");
        if (peer_now_ns() > limit) peer_die("run did not finish in time");
    }
    c->running = false;
    return start;
}

static void close_one(struct conn *c) {
    c->closing = true;
    lws_callback_on_writable(c->wsi);
    uint64_t limit = peer_now_ns() + 10000000000ull;
    while (!c->closed && peer_now_ns() < limit) lws_service(CTX, 0);
}

static void run_rr(void) {
    struct conn c;
    memset(&c, 0, sizeof c);
    c.rr = true;
    c.cap = 1 << 22;
    c.samples = (uint64_t *)malloc(c.cap * sizeof(uint64_t));
    connect_one(&c);
    phase(&c, PA.warmup);
    peer_mark("start");
    uint64_t start = phase(&c, PA.duration);
    peer_mark("end");
    peer_emit_rr("libwebsockets", c.samples, c.nsamples, c.last - start);
    close_one(&c);
}

static void run_pipe(void) {
    struct conn c;
    memset(&c, 0, sizeof c);
    connect_one(&c);
    phase(&c, PA.warmup);
    peer_mark("start");
    uint64_t start = phase(&c, PA.duration);
    peer_mark("end");
    peer_emit_pipe("libwebsockets", c.received, c.bytes, c.last - start);
    close_one(&c);
}

static void run_idle(void) {
    size_t n = PA.conns;
    struct conn *all = (struct conn *)calloc(n, sizeof *all);
    long before = peer_rss_kib();
    peer_mark("start");
    uint64_t t0 = peer_now_ns();
    uint64_t limit = t0 + 120000000000ull;
    size_t started = 0;
    /* At most 256 handshakes in flight, as the other clients. */
    while (ESTABLISHED < n) {
        while (started < n && started - ESTABLISHED - FAILED < 256) connect_start(&all[started++]);
        lws_service(CTX, 0);
        if (FAILED) peer_die("%zu connections failed", FAILED);
        if (peer_now_ns() > limit) peer_die("only %zu of %zu connected", ESTABLISHED, n);
    }
    double connect_s = (double)(peer_now_ns() - t0) / 1e9;
    usleep((useconds_t)(PA.settle * 1e6));
    long after = peer_rss_kib();
    peer_mark("end");
    peer_emit_idle("libwebsockets", n, before, after, connect_s);
    _exit(0); /* the kernel closes the sockets */
}

static void run_free(void) {
    size_t n = PA.iters;
    uint64_t *ns = (uint64_t *)calloc(n, sizeof(uint64_t));
    peer_mark("start");
    for (size_t i = 0; i < n; i++) {
        struct conn c;
        memset(&c, 0, sizeof c);
        connect_one(&c);
        usleep(5000);
        uint64_t t0 = peer_now_ns();
        close_one(&c);
        ns[i] = peer_now_ns() - t0;
        if (!c.closed) peer_die("close did not complete");
    }
    peer_mark("end");
    peer_emit_free("libwebsockets", ns, n);
}

int main(int argc, char **argv) {
    peer_parse_args(argc, argv);
    PAYLOAD = peer_payload(PA.size);
    BUF = (unsigned char *)malloc(LWS_PRE + PA.size + 1);
    if (!BUF) peer_die("out of memory");
    context_new();
    if (!strcmp(PA.workload, "rr")) run_rr();
    else if (!strcmp(PA.workload, "pipe")) run_pipe();
    else if (!strcmp(PA.workload, "idle")) run_idle();
    else if (!strcmp(PA.workload, "free")) run_free();
    else peer_die("unknown workload %s", PA.workload);
    lws_context_destroy(CTX);
    return 0;
}
