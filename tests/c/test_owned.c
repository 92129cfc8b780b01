/*
 * tether_client_send_binary_owned: the buffer is always consumed, released exactly once.
 * Against the shared test peer (tests/peers: tether-peer) or the envelope reference server;
 * every wait is bounded (TETHER_TIMEOUT_SCALE) and waits on events, never on sleeps.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"

/* tether_client_send_binary_owned: the buffer is always consumed, released exactly once.     */

/* One handed-over buffer: what its release must receive, and how often it ran. The buffer
 * itself comes from malloc and the release frees it, so ASan and valgrind also catch a double
 * release (double free) and a missing one (leak). Trackers live on the heap and are freed only
 * once every release is accounted for: a failed check leaks them rather than letting a late
 * release touch freed memory. */
typedef struct owned_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int releases; /* over all its buffers */
    int wrong;    /* releases with other arguments than handed over */
} owned_log;

typedef struct owned_buf {
    owned_log *log;
    uint8_t *data;
    size_t len;
    int releases;
} owned_buf;

static owned_log *owned_log_new(void) {
    owned_log *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    pthread_mutex_init(&l->mu, NULL);
    cond_init_monotonic(&l->cv);
    return l;
}

static void owned_release(void *ctx, uint8_t *data, size_t len) {
    owned_buf *b = ctx;
    owned_log *l = b->log;
    pthread_mutex_lock(&l->mu);
    b->releases++;
    l->releases++;
    if (data != b->data || len != b->len) l->wrong++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    free(data);
}

/* A tracked buffer of `len` bytes filled with a pattern (data NULL when len is 0). */
static owned_buf *owned_new(owned_log *l, size_t len) {
    owned_buf *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->log = l;
    b->len = len;
    if (len > 0) {
        b->data = malloc(len);
        if (!b->data) return NULL;
        for (size_t i = 0; i < len; i++) b->data[i] = (uint8_t)(i * 7 + 1);
    }
    return b;
}

static int owned_send(tether_client *c, owned_buf *b, uint64_t *id) {
    return (int)tether_client_send_binary_owned(c, b->data, b->len, owned_release, b, id);
}

static int releases_of(owned_buf *b) {
    pthread_mutex_lock(&b->log->mu);
    int n = b->releases;
    pthread_mutex_unlock(&b->log->mu);
    return n;
}

/* Wait (bounded) until the log counts `n` releases; true if it did. */
static bool wait_releases(owned_log *l, int n, int64_t timeout_ms) {
    int64_t deadline = now_ms() + scaled_ms(timeout_ms);
    pthread_mutex_lock(&l->mu);
    while (l->releases < n) {
        int64_t left = deadline - now_ms();
        if (left <= 0) break;
        cond_wait_ms(&l->cv, &l->mu, left);
    }
    bool done = l->releases >= n;
    pthread_mutex_unlock(&l->mu);
    return done;
}

/* Every buffer released exactly once, with its own arguments; then free the trackers. */
static bool owned_all_once(owned_log *l, owned_buf **bufs, int n) {
    bool ok = true;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < n; i++) {
        if (bufs[i]->releases != 1) {
            printf("    buffer %d released %d times\n", i, bufs[i]->releases);
            ok = false;
        }
    }
    if (l->wrong != 0 || l->releases != n) ok = false;
    pthread_mutex_unlock(&l->mu);
    if (ok) {
        for (int i = 0; i < n; i++) free(bufs[i]);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l);
    }
    return ok;
}

TEST(send_binary_owned_echo) {
    reset_peer();
    owned_log *l = owned_log_new();
    CHECK(l != NULL);
    rec *r = started(P.url, false);
    CHECK(r != NULL);
    CHECK(wait_count(r, &r->readies, 1, 10000));

    /* Empty (NULL data), small, and 64 KiB: each echoed, each released once it is written. */
    owned_buf *bufs[3] = {owned_new(l, 0), owned_new(l, 5), owned_new(l, 65536)};
    CHECK(bufs[0] && bufs[1] && bufs[2]);
    memcpy(bufs[1]->data, "owned", 5);
    uint64_t ids[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) CHECK_STATUS(owned_send(r->client, bufs[i], &ids[i]), TETHER_OK);
    CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    /* Static data with no release function: never released, never copied. */
    static uint8_t forever[] = "static";
    uint64_t id4 = 0;
    CHECK_STATUS(tether_client_send_binary_owned(r->client, forever, 6, NULL, NULL, &id4), TETHER_OK);
    CHECK(id4 == 4);
    CHECK(wait_count(r, &r->messages, 4, 10000));
    CHECK(wait_releases(l, 3, 10000));
    pthread_mutex_lock(&r->mu);
    bool echoed = r->binary_messages == 4 && strcmp(r->texts[1], "owned") == 0 &&
                  strcmp(r->texts[3], "static") == 0;
    pthread_mutex_unlock(&r->mu);
    CHECK(echoed);
    tether_stats s = TETHER_STATS_INIT;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.bytes_received == 5 + 65536 + 6);
    free_and_check(r);
    /* Nothing is released twice, even after free. */
    CHECK(owned_all_once(l, bufs, 3));
    rec_destroy(r);
}

/* The same in envelope mode, where Tether keeps the buffer until the server's ack. */
TEST(send_binary_owned_envelope) {
    peer R;
    CHECK(ref_server_start(&R, NULL) == 0);
    owned_log *l = owned_log_new();
    CHECK(l != NULL);
    rec *r = started_with(envelope_config(R.url, "c-owned", NULL, NULL), false);
    CHECK(r != NULL);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "not ready: %s", r->last_error_msg);
    owned_buf *bufs[2] = {owned_new(l, 3), owned_new(l, 4096)};
    CHECK(bufs[0] && bufs[1]);
    uint64_t id = 0;
    CHECK_STATUS(owned_send(r->client, bufs[0], NULL), TETHER_OK);
    CHECK_STATUS(owned_send(r->client, bufs[1], &id), TETHER_OK);
    CHECK_STATUS(tether_client_wait_acked(r->client, id, (uint64_t)scaled_ms(10000)), TETHER_OK);
    CHECK(wait_releases(l, 2, 10000));
    CHECK(wait_count(r, &r->messages, 2, 10000));
    CHECK(r->last_kind == TETHER_MESSAGE_BINARY && r->last_len == 4096);
    for (size_t i = 0; i < sizeof r->last_data; i++) CHECK(r->last_data[i] == (uint8_t)(i * 7 + 1));
    free_and_check(r);
    CHECK(owned_all_once(l, bufs, 2));
    rec_destroy(r);
    peer_stop(&R);
}

TEST(send_binary_owned_errors_release_at_once) {
    owned_log *l = owned_log_new();
    CHECK(l != NULL);
    enum { N = 8 };
    owned_buf *bufs[N];
    for (int i = 0; i < N; i++) {
        bufs[i] = owned_new(l, i == 3 ? 2048 : 16);
        CHECK(bufs[i] != NULL);
    }
    uint64_t id = 0;
    /* A NULL client: released before the call returns. */
    CHECK_STATUS(owned_send(NULL, bufs[0], &id), TETHER_ERR_NULL_PARAMETER);
    CHECK(releases_of(bufs[0]) == 1);

    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", unused_port()); /* never connects */
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_outbox_limits(cfg, 2, 1 << 20), TETHER_OK);
    CHECK_STATUS(tether_config_set_max_outbound_message_size(cfg, 1024), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    /* NULL data with a length: refused, and the release still runs (with NULL). */
    free(bufs[1]->data);
    bufs[1]->data = NULL;
    CHECK_STATUS(owned_send(r->client, bufs[1], &id), TETHER_ERR_NULL_PARAMETER);
    CHECK(releases_of(bufs[1]) == 1);
    char msg[256];
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "NULL") != NULL);
    /* Over the outbound limit. */
    CHECK_STATUS(owned_send(r->client, bufs[3], &id), TETHER_ERR_TOO_LARGE);
    CHECK(releases_of(bufs[3]) == 1);
    /* Queued while disconnected (not released yet), then the outbox is full. */
    CHECK_STATUS(owned_send(r->client, bufs[4], &id), TETHER_OK);
    CHECK(id == 1);
    CHECK_STATUS(owned_send(r->client, bufs[5], &id), TETHER_OK);
    CHECK(id == 2);
    CHECK_STATUS(owned_send(r->client, bufs[2], &id), TETHER_ERR_QUEUE_FULL);
    CHECK(releases_of(bufs[2]) == 1);
    CHECK(releases_of(bufs[4]) == 0 && releases_of(bufs[5]) == 0);
    /* Closing fails the two queued messages (on_send_failed) and releases them. */
    CHECK_STATUS(tether_client_close(r->client, 1000, "bye"), TETHER_OK);
    CHECK_STATUS(owned_send(r->client, bufs[6], &id), TETHER_ERR_CLOSED);
    CHECK(releases_of(bufs[6]) == 1);
    CHECK(id == 2); /* outputs untouched on failure */
    CHECK(wait_count(r, &r->closed, 1, 10000));
    CHECK(get(r, &r->send_failed) == 2 && r->undelivered == 2);
    CHECK(wait_releases(l, 7, 10000));
    tether_client *stale = r->client;
    free_and_check(r);
    /* A freed handle. */
    CHECK_STATUS(owned_send(stale, bufs[7], &id), TETHER_ERR_INVALID_HANDLE);
    CHECK(owned_all_once(l, bufs, N));
    rec_destroy(r);

    /* Not ready, with queueing while disconnected turned off. */
    l = owned_log_new();
    CHECK(l != NULL);
    owned_buf *one = owned_new(l, 8);
    CHECK(one != NULL);
    r = rec_new(true);
    CHECK(r != NULL);
    cfg = test_config(url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_queue_while_disconnected(cfg, false), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK_STATUS(owned_send(r->client, one, NULL), TETHER_ERR_NOT_READY);
    CHECK(releases_of(one) == 1);
    free_and_check(r);
    CHECK(owned_all_once(l, &one, 1));
    rec_destroy(r);
}

TEST(send_binary_owned_released_by_free) {
    /* Connected, the server not echoing: free drains the outbox, each buffer is released once
     * it is written. */
    int received0 = quiet_peer();
    CHECK(received0 >= 0);
    owned_log *l = owned_log_new();
    CHECK(l != NULL);
    enum { N = 50 };
    owned_buf *bufs[N];
    for (int i = 0; i < N; i++) {
        bufs[i] = owned_new(l, 1024);
        CHECK(bufs[i] != NULL);
    }
    rec *r = started(P.url, false);
    CHECK(r != NULL);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    for (int i = 0; i < N; i++) CHECK_STATUS(owned_send(r->client, bufs[i], NULL), TETHER_OK);
    free_and_check(r);
    CHECK(r->closed == 1 && r->undelivered == 0);
    CHECK(wait_releases(l, N, 10000));
    int received = peer_received() - received0;
    CHECK_MSG(received == N, "peer received %d", received);
    peer_cmd(&P, "echo on", NULL, 0);
    CHECK(owned_all_once(l, bufs, N));
    rec_destroy(r);

    /* Disconnected, poll mode, never polled: free fails the queued messages and releases
     * them (the undelivered events are discarded with the client). */
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", unused_port());
    l = owned_log_new();
    CHECK(l != NULL);
    owned_buf *q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = owned_new(l, 100);
        CHECK(q[i] != NULL);
    }
    r = started(url, true);
    CHECK(r != NULL);
    for (int i = 0; i < 3; i++) CHECK_STATUS(owned_send(r->client, q[i], NULL), TETHER_OK);
    CHECK(releases_of(q[0]) == 0);
    free_and_check(r);
    CHECK(wait_releases(l, 3, 10000));
    CHECK(owned_all_once(l, q, 3));
    rec_destroy(r);
}
