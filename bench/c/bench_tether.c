/*
 * Tether's C API (include/tether.h, libtether), the way a C application uses it.
 *
 *   bench_tether --url URL --workload rr|pipe|idle|poll|free [--mode cb|poll] [--io runtime|caller]
 *                [--protocol raw|envelope] [--kind text|binary] [--size N] [--window N]
 *                [--duration S] [--warmup S] [--conns N] [--iters N] [--settle S]
 *                [--send owned|copy]
 *
 * --mode cb (TETHER_DISPATCH_THREAD): callbacks run on the client's dispatcher thread; the
 * on_message / on_acked callbacks send the next messages themselves, the main thread only
 * waits for the end. --mode poll (TETHER_DISPATCH_POLL): the main thread sends and runs the
 * callbacks with tether_client_poll_timeout(), like a game loop.
 *
 * Binary messages go out with tether_client_send_binary_owned() (no copy: Tether writes from
 * the application's buffer and hands it back through a release function), or with the
 * copying tether_client_send_binary() given --send copy. The owned buffers come from a small
 * pool (see struct pool below).
 *
 * Output protocol (read by bench/run.py): "MARK start", "MARK end", "RESULT {json}".
 * Configuration: Tether's defaults, except the outbox bound (8192 messages / 128 MiB, so that
 * 1,000 messages of 64 KiB fit in flight).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tether.h"

/* ---------------------------------------------------------------- utilities */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stdout);
    _exit(1);
}

static void mark(const char *what) {
    printf("MARK %s\n", what);
    fflush(stdout);
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

/* ---------------------------------------------------------------- arguments */

struct args {
    const char *url;
    const char *workload;
    bool cb;
    bool caller_io; /* --io caller */
    bool envelope;
    bool binary;
    size_t size;
    uint64_t window;
    double duration;
    double warmup;
    size_t conns;
    size_t iters;
    double settle;
    bool copy; /* binary: tether_client_send_binary (copies) instead of _send_binary_owned */
};

static struct args A = {
    .url = "ws://127.0.0.1:9001/",
    .workload = "rr",
    .cb = false,
    .caller_io = false,
    .envelope = false,
    .binary = false,
    .size = 64,
    .window = 1000,
    .duration = 2.0,
    .warmup = 0.2,
    .conns = 1000,
    .iters = 30,
    .settle = 1.0,
};

static void parse_args(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--url")) A.url = v;
        else if (!strcmp(k, "--workload")) A.workload = v;
        else if (!strcmp(k, "--mode")) A.cb = !strcmp(v, "cb");
        else if (!strcmp(k, "--protocol")) A.envelope = !strcmp(v, "envelope");
        else if (!strcmp(k, "--kind")) A.binary = !strcmp(v, "binary");
        else if (!strcmp(k, "--size")) A.size = (size_t)atol(v);
        else if (!strcmp(k, "--window")) A.window = (uint64_t)atol(v);
        else if (!strcmp(k, "--duration")) A.duration = atof(v);
        else if (!strcmp(k, "--warmup")) A.warmup = atof(v);
        else if (!strcmp(k, "--conns")) A.conns = (size_t)atol(v);
        else if (!strcmp(k, "--iters")) A.iters = (size_t)atol(v);
        else if (!strcmp(k, "--settle")) A.settle = atof(v);
        else if (!strcmp(k, "--send")) A.copy = !strcmp(v, "copy");
        else if (!strcmp(k, "--io")) A.caller_io = !strcmp(v, "caller");
        else die("unknown argument %s", k);
    }
    if (argc % 2 == 0) die("arguments come in --key value pairs");
}

static tether_config *make_config(void) {
    char url[512];
    tether_config *cfg = tether_config_new();
    if (!cfg) die("tether_config_new");
    if (A.envelope) {
        /* The bench server speaks the Tether protocol on /tether. */
        size_t n = strlen(A.url);
        while (n > 0 && A.url[n - 1] == '/') n--;
        snprintf(url, sizeof url, "%.*s/tether", (int)n, A.url);
    } else {
        snprintf(url, sizeof url, "%s", A.url);
    }
    if (tether_config_set_url(cfg, url) != TETHER_OK) die("bad url %s", url);
    tether_config_set_outbox_limits(cfg, 8192, (size_t)128 << 20);
    tether_config_set_dispatch(cfg, A.cb ? TETHER_DISPATCH_THREAD : TETHER_DISPATCH_POLL);
    if (A.envelope) tether_config_set_protocol(cfg, TETHER_PROTOCOL_ENVELOPE);
    /* --io caller: the polling thread runs the I/O (docs/CALLER_IO.md), keeper at its default. */
    if (A.caller_io) tether_config_set_io_driver(cfg, TETHER_IO_DRIVER_CALLER);
    return cfg;
}

/* ---------------------------------------------------------------- one benchmark client */

struct bench {
    tether_client *client;
    uint8_t *payload;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool ready;
    bool finished;
    bool failed;
    char error[256];

    bool running; /* measuring (or warming up) */
    bool rr;
    bool stopping;
    uint64_t deadline;
    uint64_t t0;
    uint64_t last;
    uint64_t sent, received, acked, bytes;
    uint64_t *samples;
    size_t nsamples, cap;
    bool got; /* rr, poll mode: the echo arrived */
};

static uint64_t done_count(const struct bench *b) {
    if (A.envelope) return b->received < b->acked ? b->received : b->acked;
    return b->received;
}

/* Buffers handed over with tether_client_send_binary_owned. A real application fills a
 * buffer per message and gives it away; here every message has the same content, so a buffer
 * is filled once, when the pool first allocates it, and the release function puts it back
 * for the next message (it may run on one of Tether's I/O threads, hence the lock). What is
 * measured is the hand-over without a copy plus the pool's lock: the fill, which the copying
 * path does not pay either (it copies one prepared payload), is left out of both. */
struct pool {
    pthread_mutex_t lock;
    uint8_t **free; /* buffers ready to use */
    size_t n, cap;
    size_t allocated;
};

static struct pool POOL = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint8_t *pool_get(void) {
    pthread_mutex_lock(&POOL.lock);
    uint8_t *buf = POOL.n > 0 ? POOL.free[--POOL.n] : NULL;
    if (!buf) POOL.allocated++;
    pthread_mutex_unlock(&POOL.lock);
    if (!buf) {
        buf = malloc(A.size ? A.size : 1);
        if (!buf) die("out of memory");
        for (size_t i = 0; i < A.size; i++) buf[i] = (uint8_t)('a' + i % 26);
    }
    return buf;
}

/* The release function (tether_buffer_free): back to the pool. Must not call Tether. */
static void pool_put(void *ctx, uint8_t *data, size_t len) {
    (void)ctx;
    (void)len;
    pthread_mutex_lock(&POOL.lock);
    if (POOL.n == POOL.cap) {
        size_t cap = POOL.cap ? POOL.cap * 2 : 1024;
        uint8_t **grown = realloc(POOL.free, cap * sizeof *grown);
        if (!grown) die("out of memory");
        POOL.free = grown;
        POOL.cap = cap;
    }
    POOL.free[POOL.n++] = data;
    pthread_mutex_unlock(&POOL.lock);
}

/* Queue one message. The owned buffer is consumed whatever the status (on an error it is
 * already back in the pool), so a retry after TETHER_ERR_QUEUE_FULL takes a fresh one. */
static tether_status send_message(struct bench *b) {
    if (!A.binary) return tether_client_send_text(b->client, (const char *)b->payload, A.size, NULL);
    if (A.copy) return tether_client_send_binary(b->client, b->payload, A.size, NULL);
    return tether_client_send_binary_owned(b->client, pool_get(), A.size, pool_put, NULL, NULL);
}

static void send_one(struct bench *b) {
    tether_status st = send_message(b);
    if (st != TETHER_OK) die("send: %s", tether_status_str(st));
    b->sent++;
}

static void top_up(struct bench *b) {
    uint64_t free_slots = A.window - (b->sent - done_count(b));
    for (uint64_t i = 0; i < free_slots; i++) {
        tether_status st = send_message(b);
        if (st == TETHER_ERR_QUEUE_FULL) break;
        if (st != TETHER_OK) die("send: %s", tether_status_str(st));
        b->sent++;
    }
}

/* In callback mode the caller holds b->lock (see on_message). */
static void finish(struct bench *b, uint64_t now) {
    b->running = false;
    b->last = now;
    b->finished = true;
    if (A.cb) pthread_cond_broadcast(&b->cond);
}

/* A message or an ack completed something: the shared logic of both modes. */
static void progress(struct bench *b, bool message) {
    if (!b->running) return;
    uint64_t now = now_ns();
    if (b->rr) {
        if (!message) return;
        if (b->nsamples < b->cap) b->samples[b->nsamples++] = now - b->t0;
        b->got = true;
        if (A.cb) {
            if (now >= b->deadline) {
                finish(b, now);
            } else {
                b->t0 = now_ns();
                send_one(b);
            }
        }
        return;
    }
    b->last = now;
    if (A.cb) {
        if (!b->stopping) {
            if (now >= b->deadline) b->stopping = true;
            else top_up(b);
        }
        if (b->stopping && done_count(b) == b->sent) finish(b, now);
    }
}

/* In callback mode the state is shared between the dispatcher thread and the main thread,
 * which starts each phase: the callbacks take the (uncontended) lock. */
static void on_message(void *ud, const uint8_t *data, size_t len, enum tether_message_type kind) {
    struct bench *b = ud;
    (void)data;
    (void)kind;
    if (A.cb) pthread_mutex_lock(&b->lock);
    b->received++;
    b->bytes += len;
    progress(b, true);
    if (A.cb) pthread_mutex_unlock(&b->lock);
}

static void on_acked(void *ud, uint64_t id) {
    struct bench *b = ud;
    (void)id;
    if (A.cb) pthread_mutex_lock(&b->lock);
    b->acked++;
    progress(b, false);
    if (A.cb) pthread_mutex_unlock(&b->lock);
}

static void on_ready(void *ud) {
    struct bench *b = ud;
    pthread_mutex_lock(&b->lock);
    b->ready = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void on_error(void *ud, enum tether_status status, const char *message) {
    struct bench *b = ud;
    if (!b->running) return;
    die("async error %s: %s", tether_status_str(status), message);
}

static void on_send_failed(void *ud, uint64_t id, enum tether_status status, const char *reason) {
    struct bench *b = ud;
    if (!b->running) return;
    die("message %" PRIu64 " failed (%s): %s", id, tether_status_str(status), reason);
}

static struct bench *bench_new(void) {
    struct bench *b = calloc(1, sizeof *b);
    if (!b) die("out of memory");
    b->payload = malloc(A.size ? A.size : 1);
    for (size_t i = 0; i < A.size; i++) b->payload[i] = (uint8_t)('a' + i % 26);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    return b;
}

static void bench_connect(struct bench *b) {
    tether_config *cfg = make_config();
    tether_callbacks cb = TETHER_CALLBACKS_INIT;
    cb.on_ready = on_ready;
    cb.on_message = on_message;
    cb.on_acked = on_acked;
    cb.on_error = on_error;
    cb.on_send_failed = on_send_failed;
    tether_status st = tether_client_new(cfg, &cb, b, NULL, &b->client);
    if (st != TETHER_OK) {
        char msg[512];
        tether_config_last_error(cfg, msg, sizeof msg, NULL);
        die("tether_client_new: %s: %s", tether_status_str(st), msg);
    }
    tether_config_free(cfg);
    uint64_t deadline = now_ns() + 20000000000ull;
    if (A.cb) {
        pthread_mutex_lock(&b->lock);
        while (!b->ready) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100000000;
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            pthread_cond_timedwait(&b->cond, &b->lock, &ts);
            if (now_ns() > deadline) die("not ready in time");
        }
        pthread_mutex_unlock(&b->lock);
    } else {
        while (!b->ready) {
            tether_client_poll_timeout(b->client, 0, 100, NULL);
            if (now_ns() > deadline) die("not ready in time");
        }
    }
}

/* One measured (or warm-up) phase. Returns the time of the last completion. */
static uint64_t phase(struct bench *b, double seconds, uint64_t *start_out) {
    if (A.cb) pthread_mutex_lock(&b->lock);
    uint64_t start = now_ns();
    b->deadline = start + (uint64_t)(seconds * 1e9);
    b->sent = b->received = b->acked = b->bytes = 0;
    b->nsamples = 0;
    b->stopping = false;
    b->finished = false;
    b->last = start;
    if (start_out) *start_out = start;
    if (A.cb) {
        /* Under the lock the callbacks take: they drive from the first echo on. */
        b->running = true;
        if (b->rr) {
            b->t0 = now_ns();
            send_one(b);
        } else {
            top_up(b);
        }
        uint64_t limit = b->deadline + 20000000000ull;
        while (!b->finished) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50000000;
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            pthread_cond_timedwait(&b->cond, &b->lock, &ts);
            if (now_ns() > limit) die("callback run did not finish in time");
        }
        pthread_mutex_unlock(&b->lock);
        return b->last;
    }
    b->running = true;
    uint64_t limit = b->deadline + 20000000000ull;
    if (b->rr) {
        for (;;) {
            b->got = false;
            b->t0 = now_ns();
            send_one(b);
            while (!b->got) {
                tether_client_poll_timeout(b->client, 0, 1000, NULL);
                if (now_ns() > limit) die("no echo in time");
            }
            if (now_ns() >= b->deadline) break;
        }
        b->running = false;
        return now_ns();
    }
    for (;;) {
        if (!b->stopping) {
            top_up(b);
            if (now_ns() >= b->deadline) b->stopping = true;
        }
        if (b->stopping && done_count(b) == b->sent) break;
        tether_client_poll_timeout(b->client, 0, 1000, NULL);
        if (now_ns() > limit) die("pipelined run did not finish in time");
    }
    b->running = false;
    return b->last;
}

static void emit_head(const char *workload) {
    printf("RESULT {\"client\":\"tether-c-%s\",\"workload\":\"%s\",\"protocol\":\"%s\"",
           A.cb ? "cb" : "poll", workload, A.envelope ? "envelope" : "raw");
}

static void run_rr(void) {
    struct bench *b = bench_new();
    b->rr = true;
    b->cap = 1 << 22;
    b->samples = malloc(b->cap * sizeof(uint64_t));
    bench_connect(b);
    phase(b, A.warmup, NULL);
    uint64_t start;
    mark("start");
    uint64_t last = phase(b, A.duration, &start);
    mark("end");
    qsort(b->samples, b->nsamples, sizeof(uint64_t), cmp_u64);
    double secs = (double)(last - start) / 1e9;
    emit_head("rr");
    printf(",\"count\":%zu,\"seconds\":%.6f,\"rate\":%.1f,\"p50_us\":%.3f,\"p99_us\":%.3f,"
           "\"max_us\":%.3f}\n",
           b->nsamples, secs, (double)b->nsamples / secs,
           (double)percentile(b->samples, b->nsamples, 50) / 1e3,
           (double)percentile(b->samples, b->nsamples, 99) / 1e3,
           (double)(b->nsamples ? b->samples[b->nsamples - 1] : 0) / 1e3);
    fflush(stdout);
    tether_client_free(b->client);
}

static void run_pipe(void) {
    struct bench *b = bench_new();
    bench_connect(b);
    phase(b, A.warmup, NULL);
    uint64_t start;
    mark("start");
    uint64_t last = phase(b, A.duration, &start);
    mark("end");
    double secs = (double)(last - start) / 1e9;
    uint64_t done = done_count(b);
    emit_head("pipe");
    printf(",\"count\":%" PRIu64 ",\"seconds\":%.6f,\"rate\":%.1f,\"mbps\":%.3f,\"window\":%" PRIu64
           ",\"acked\":%" PRIu64 ",\"send\":\"%s\",\"pool_buffers\":%zu}\n",
           done, secs, (double)done / secs, (double)b->bytes / secs / 1e6, A.window, b->acked,
           !A.binary ? "text" : A.copy ? "copy" : "owned", POOL.allocated);
    fflush(stdout);
    tether_client_free(b->client);
}

static void run_idle(void) {
    size_t n = A.conns;
    struct bench **all = calloc(n, sizeof *all);
    long before = rss_kib();
    mark("start");
    uint64_t t0 = now_ns();
    tether_config *cfg = make_config();
    tether_callbacks cb = TETHER_CALLBACKS_INIT;
    cb.on_ready = on_ready;
    for (size_t i = 0; i < n; i++) {
        all[i] = calloc(1, sizeof(struct bench));
        pthread_mutex_init(&all[i]->lock, NULL);
        pthread_cond_init(&all[i]->cond, NULL);
        tether_status st = tether_client_new(cfg, &cb, all[i], NULL, &all[i]->client);
        if (st != TETHER_OK) die("tether_client_new #%zu: %s", i, tether_status_str(st));
    }
    tether_config_free(cfg);
    uint64_t deadline = now_ns() + 120000000000ull;
    for (;;) {
        size_t ready = 0;
        for (size_t i = 0; i < n; i++) {
            if (tether_client_state(all[i]->client) == TETHER_STATE_READY) ready++;
        }
        if (ready == n) break;
        if (now_ns() > deadline) die("only %zu of %zu clients ready", ready, n);
        usleep(20000);
    }
    double connect_s = (double)(now_ns() - t0) / 1e9;
    if (!A.cb) {
        for (size_t i = 0; i < n; i++) tether_client_poll(all[i]->client, 0, NULL);
    }
    usleep((useconds_t)(A.settle * 1e6));
    long after = rss_kib();
    mark("end");
    emit_head("idle");
    printf(",\"conns\":%zu,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"rss_per_conn_kib\":%.3f,"
           "\"connect_seconds\":%.3f}\n",
           n, before, after, (double)(after - before) / (double)n, connect_s);
    fflush(stdout);
    /* Leave without freeing thousands of clients one by one: the kernel closes the sockets. */
    _exit(0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_poll(void) {
    if (A.cb) die("the poll workload needs --mode poll");
    struct bench *b = bench_new();
    bench_connect(b);
    tether_client_poll(b->client, 0, NULL);
    size_t iters = A.iters > 1000 ? A.iters : 10000000;
    size_t ran = 0;
    for (size_t i = 0; i < iters / 10; i++) tether_client_poll(b->client, 0, &ran);
    double runs[5];
    mark("start");
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < iters / 5; i++) {
            tether_client_poll(b->client, 0, &ran);
            if (ran) die("an event arrived on an idle client");
        }
        runs[r] = (double)(now_ns() - t0) / (double)(iters / 5);
    }
    mark("end");
    qsort(runs, 5, sizeof(double), cmp_double);
    emit_head("poll");
    printf(",\"count\":%zu,\"poll_ns\":%.2f,\"poll_min_ns\":%.2f}\n", iters, runs[2], runs[0]);
    fflush(stdout);
    tether_client_free(b->client);
}

static void run_free(void) {
    size_t n = A.iters;
    uint64_t *ns = calloc(n, sizeof(uint64_t));
    mark("start");
    for (size_t i = 0; i < n; i++) {
        struct bench *b = bench_new();
        bench_connect(b);
        if (!A.cb) tether_client_poll(b->client, 0, NULL);
        usleep(5000);
        uint64_t t0 = now_ns();
        tether_client_free(b->client);
        ns[i] = now_ns() - t0;
        free(b->payload);
        free(b);
    }
    mark("end");
    qsort(ns, n, sizeof(uint64_t), cmp_u64);
    emit_head("free");
    printf(",\"count\":%zu,\"free_p50_us\":%.3f,\"free_p90_us\":%.3f,\"free_max_us\":%.3f,"
           "\"free_min_us\":%.3f}\n",
           n, (double)percentile(ns, n, 50) / 1e3, (double)percentile(ns, n, 90) / 1e3,
           (double)ns[n - 1] / 1e3, (double)ns[0] / 1e3);
    fflush(stdout);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    if (!strcmp(A.workload, "rr")) run_rr();
    else if (!strcmp(A.workload, "pipe")) run_pipe();
    else if (!strcmp(A.workload, "idle")) run_idle();
    else if (!strcmp(A.workload, "poll")) run_poll();
    else if (!strcmp(A.workload, "free")) run_free();
    else die("unknown workload %s", A.workload);
    return 0;
}
