/*
 * What the C and C++ peer clients (bench_lws.c, bench_beast.cpp) share: the command line of
 * every bench client, the output protocol read by bench/run.py ("MARK start", "MARK end",
 * "RESULT {json}"), the payload, percentiles. Header-only, valid C11 and C++17.
 *
 *   --url URL --workload rr|pipe|idle|free [--kind text|binary] [--size N] [--window N]
 *   [--duration S] [--warmup S] [--conns N] [--iters N] [--settle S]
 */
#ifndef TETHER_BENCH_PEER_COMMON_H
#define TETHER_BENCH_PEER_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct peer_args {
    const char *url;
    const char *workload;
    int binary;
    size_t size;
    uint64_t window;
    double duration;
    double warmup;
    size_t conns;
    size_t iters;
    double settle;
    /* parsed from url (ws://host:port/path) */
    char host[256];
    int port;
    char path[512];
};

static struct peer_args PA = {
    "ws://127.0.0.1:9001/", "rr", 0, 64, 1000, 2.0, 0.2, 1000, 30, 1.0, "", 0, "",
};

static uint64_t peer_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void peer_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stdout);
    _exit(1);
}

static void peer_mark(const char *what) {
    printf("MARK %s\n", what);
    fflush(stdout);
}

static long peer_rss_kib(void) {
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

static int peer_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank, as bench/src/lib.rs. */
static uint64_t peer_percentile(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void peer_parse_args(int argc, char **argv) {
    if (argc % 2 == 0) peer_die("arguments come in --key value pairs");
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--url")) PA.url = v;
        else if (!strcmp(k, "--workload")) PA.workload = v;
        else if (!strcmp(k, "--kind")) PA.binary = !strcmp(v, "binary");
        else if (!strcmp(k, "--size")) PA.size = (size_t)atol(v);
        else if (!strcmp(k, "--window")) PA.window = (uint64_t)atol(v);
        else if (!strcmp(k, "--duration")) PA.duration = atof(v);
        else if (!strcmp(k, "--warmup")) PA.warmup = atof(v);
        else if (!strcmp(k, "--conns")) PA.conns = (size_t)atol(v);
        else if (!strcmp(k, "--iters")) PA.iters = (size_t)atol(v);
        else if (!strcmp(k, "--settle")) PA.settle = atof(v);
        else if (!strcmp(k, "--protocol")) {
            if (strcmp(v, "raw") != 0) peer_die("only --protocol raw (a plain WebSocket client)");
        } else peer_die("unknown argument %s", k);
    }
    const char *rest = PA.url;
    if (strncmp(rest, "ws://", 5) != 0) peer_die("not a ws:// url: %s", PA.url);
    rest += 5;
    const char *slash = strchr(rest, '/');
    size_t hostport = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *colon = (const char *)memchr(rest, ':', hostport);
    size_t hostlen = colon ? (size_t)(colon - rest) : hostport;
    if (hostlen >= sizeof PA.host) peer_die("host too long");
    memcpy(PA.host, rest, hostlen);
    PA.host[hostlen] = 0;
    PA.port = colon ? atoi(colon + 1) : 80;
    snprintf(PA.path, sizeof PA.path, "%s", slash ? slash : "/");
}

/* A payload of `size` bytes: printable ASCII, as bench/src/lib.rs `payload`. */
static unsigned char *peer_payload(size_t size) {
    unsigned char *p = (unsigned char *)malloc(size ? size : 1);
    if (!p) peer_die("out of memory");
    for (size_t i = 0; i < size; i++) p[i] = (unsigned char)('a' + i % 26);
    return p;
}

/* RESULT line for (a): samples in ns (sorted here), elapsed in ns. */
static void peer_emit_rr(const char *client, uint64_t *samples, size_t n, uint64_t elapsed) {
    qsort(samples, n, sizeof(uint64_t), peer_cmp_u64);
    double secs = (double)elapsed / 1e9;
    printf("RESULT {\"client\":\"%s\",\"workload\":\"rr\",\"count\":%zu,\"seconds\":%.6f,"
           "\"rate\":%.1f,\"p50_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f}\n",
           client, n, secs, (double)n / secs, (double)peer_percentile(samples, n, 50) / 1e3,
           (double)peer_percentile(samples, n, 99) / 1e3,
           (double)(n ? samples[n - 1] : 0) / 1e3);
    fflush(stdout);
}

/* RESULT line for (b), (c). */
static void peer_emit_pipe(const char *client, uint64_t messages, uint64_t bytes, uint64_t elapsed) {
    double secs = (double)elapsed / 1e9;
    printf("RESULT {\"client\":\"%s\",\"workload\":\"pipe\",\"count\":%llu,\"seconds\":%.6f,"
           "\"rate\":%.1f,\"mbps\":%.3f,\"window\":%llu}\n",
           client, (unsigned long long)messages, secs, (double)messages / secs,
           (double)bytes / secs / 1e6, (unsigned long long)PA.window);
    fflush(stdout);
}

/* RESULT line for (e). */
static void peer_emit_idle(const char *client, size_t conns, long before, long after,
                           double connect_s) {
    printf("RESULT {\"client\":\"%s\",\"workload\":\"idle\",\"conns\":%zu,\"rss_before_kib\":%ld,"
           "\"rss_after_kib\":%ld,\"rss_per_conn_kib\":%.3f,\"connect_seconds\":%.3f}\n",
           client, conns, before, after, (double)(after - before) / (double)conns, connect_s);
    fflush(stdout);
}

/* RESULT line for (f): ns per close, sorted here. */
static void peer_emit_free(const char *client, uint64_t *ns, size_t n) {
    qsort(ns, n, sizeof(uint64_t), peer_cmp_u64);
    printf("RESULT {\"client\":\"%s\",\"workload\":\"free\",\"count\":%zu,\"free_p50_us\":%.3f,"
           "\"free_p90_us\":%.3f,\"free_max_us\":%.3f,\"free_min_us\":%.3f}\n",
           client, n, (double)peer_percentile(ns, n, 50) / 1e3,
           (double)peer_percentile(ns, n, 90) / 1e3, (double)(n ? ns[n - 1] : 0) / 1e3,
           (double)(n ? ns[0] : 0) / 1e3);
    fflush(stdout);
}

#endif
