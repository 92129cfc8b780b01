/*
 * Poll mode: reentrancy and concurrent polls are errors, batches keep bounds and order, free in a batch.
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

TEST(poll_reentrancy_is_an_error) {
    reset_peer();
    rec *r = rec_new(true);
    CHECK(r != NULL);
    r->poll_on_ready = true;
    tether_config *cfg = test_config(P.url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    CHECK_STATUS(r->poll_on_ready_status, TETHER_ERR_REENTRANT);
    char msg[256];
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "inside") != NULL);
    free_and_check(r);
    rec_destroy(r);
}

typedef struct poller {
    tether_client *client;
    atomic_bool stop;
    atomic_bool inside;
} poller;

static void *poll_loop(void *arg) {
    poller *p = arg;
    int64_t deadline = now_ms() + scaled_ms(10000);
    while (!atomic_load(&p->stop) && now_ms() < deadline) {
        size_t ran;
        atomic_store(&p->inside, true);
        tether_client_poll_timeout(p->client, 0, 200, &ran);
    }
    return NULL;
}

TEST(concurrent_poll_is_an_error) {
    reset_peer();
    rec *r = rec_new(true);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    poller p;
    p.client = r->client;
    atomic_init(&p.stop, false);
    atomic_init(&p.inside, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, poll_loop, &p) == 0);
    /* The other thread spends nearly all its time inside a poll: ours must be refused. */
    int64_t deadline = now_ms() + scaled_ms(10000);
    int st = TETHER_OK;
    while (now_ms() < deadline) {
        if (!atomic_load(&p.inside)) {
            sched_yield();
            continue;
        }
        st = tether_client_poll(r->client, 0, NULL);
        if (st != TETHER_OK) break;
        sched_yield();
    }
    atomic_store(&p.stop, true);
    pthread_join(t, NULL);
    CHECK_STATUS(st, TETHER_ERR_REENTRANT);
    char msg[256];
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "another thread") != NULL);
    free_and_check(r);
    rec_destroy(r);
}

/* Poll mode takes events in batches: bounds, order, and a free in the middle of a batch.     */

/* A poll-mode client, reconnect off, that the peer has sent `n` texts "<prefix><i>" and then
 * closed: everything the client will ever report is then pending, unpolled. The proof is
 * tether_client_wait_closed: the session ends after queueing its last event (on_closed), and
 * the queue keeps order. Not the stats' messages_received: it counts a message before the
 * message is handed to the queue (a batch of them can still be on the way). */
static rec *closed_with_pending_texts(const char *prefix, int n) {
    reset_peer();
    tether_config *cfg = test_config(P.url, true);
    if (!cfg || tether_config_set_reconnect_enabled(cfg, false) != TETHER_OK) {
        tether_config_free(cfg);
        return NULL;
    }
    rec *r = started_with(cfg, true);
    if (!r) return NULL;
    bool ok = wait_count(r, &r->readies, 1, 10000);
    for (int i = 0; ok && i < n; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "send-text %s%d", prefix, i);
        ok = peer_cmd(&P, cmd, NULL, 0) == 0;
    }
    ok = ok && peer_cmd(&P, "close 1000 done", NULL, 0) == 0;
    ok = ok && tether_client_wait_closed(r->client, (uint64_t)scaled_ms(10000)) == TETHER_OK;
    if (!ok) {
        printf("  closed_with_pending_texts(%s, %d) failed\n", prefix, n);
        return NULL; /* leaked on purpose: its client may still call back */
    }
    return r;
}

TEST(poll_batches_keep_bounds_and_order) {
    /* More than one internal chunk (256 events) of server messages, all pending unpolled,
     * then the server's close and the client's end. */
    enum { N = 300 };
    rec *r = closed_with_pending_texts("b", N);
    CHECK(r != NULL);
    size_t ran = 0;
    CHECK_STATUS(tether_client_poll(r->client, 2, &ran), TETHER_OK);
    CHECK(ran == 2 && get(r, &r->messages) == 2);
    CHECK_STATUS(tether_client_poll(r->client, 1, &ran), TETHER_OK);
    CHECK(ran == 1 && get(r, &r->messages) == 3);
    /* 0: everything pending now, across chunks, in one call: the other messages, the close
     * and the end (and the state changes in between). */
    CHECK_STATUS(tether_client_poll(r->client, 0, &ran), TETHER_OK);
    CHECK_MSG(ran >= N - 3 + 2, "ran %zu", ran);
    CHECK_MSG(get(r, &r->messages) == N, "messages %d", get(r, &r->messages));
    CHECK(get(r, &r->closes) == 1 && get(r, &r->closed) == 1);
    CHECK_STATUS(tether_client_poll(r->client, 0, &ran), TETHER_OK);
    CHECK(ran == 0);
    for (int i = 0; i < MAX_TEXTS; i++) {
        char want[16];
        snprintf(want, sizeof want, "b%d", i);
        CHECK_MSG(strcmp(r->texts[i], want) == 0, "message %d is %s", i, r->texts[i]);
    }
    free_and_check(r);
    rec_destroy(r);
}

TEST(poll_free_in_the_middle_of_a_batch) {
    rec *r = closed_with_pending_texts("batched", 5);
    CHECK(r != NULL);
    /* The first callback frees the client: the poll stops there; the messages it had taken
     * are dropped (LeakSanitizer and valgrind check they are released), none reaches a
     * callback, and the finalizer runs once. */
    r->free_on_message = true;
    tether_client *stale = r->client;
    size_t ran = 0;
    CHECK_STATUS(tether_client_poll(stale, 0, &ran), TETHER_OK);
    CHECK(ran == 1);
    CHECK(get(r, &r->messages) == 1);
    CHECK(get(r, &r->finalized) == 1);
    CHECK(get(r, &r->after_inner_free) == 0);
    CHECK(get(r, &r->finalize_in_cb) == 0);
    CHECK_STATUS(tether_client_poll(stale, 0, &ran), TETHER_ERR_INVALID_HANDLE);
    rec_destroy(r);
}

/* A poll-mode client on the peer whose I/O only the polling thread runs (no keeper). */
static rec *caller_driven_without_keeper(void) {
    reset_peer();
    tether_config *cfg = test_config(P.url, true);
    if (!cfg || tether_config_set_io_driver(cfg, TETHER_IO_DRIVER_CALLER) != TETHER_OK ||
        tether_config_set_keeper_after_ms(cfg, 0) != TETHER_OK) {
        tether_config_free(cfg);
        return NULL;
    }
    return started_with(cfg, true);
}

TEST(caller_driven_io_runs_on_the_polling_thread) {
    /* No keeper: no thread of Tether's exists for this client, so the echo can only come
     * from the I/O the polling thread runs inside tether_client_poll_timeout. */
    rec *r = caller_driven_without_keeper();
    CHECK(r != NULL);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    uint64_t id = 0;
    CHECK_STATUS(tether_client_send_text(r->client, "driven", 6, &id), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    CHECK(strcmp(r->texts[0], "driven") == 0);
    /* Waiting for the close drives too: the close handshake runs inside this call. */
    CHECK_STATUS(tether_client_close(r->client, 1000, "bye"), TETHER_OK);
    CHECK_STATUS(tether_client_wait_closed(r->client, (uint64_t)scaled_ms(10000)), TETHER_OK);
    free_and_check(r);
    rec_destroy(r);
}

TEST(caller_driven_io_needs_poll_dispatch) {
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_io_driver(cfg, 7), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_config_set_io_driver(cfg, TETHER_IO_DRIVER_CALLER), TETHER_OK);
    tether_callbacks cb = all_callbacks();
    tether_client *client = NULL;
    CHECK_STATUS(tether_client_new(cfg, &cb, NULL, NULL, &client), TETHER_ERR_INVALID_CONFIG);
    CHECK(client == NULL);
    char msg[512];
    CHECK_MSG(strstr(config_error(cfg, msg, sizeof msg), "poll") != NULL, "%s", msg);
    tether_config_free(cfg);
}

TEST(caller_driven_io_game_loop_polls_without_waiting) {
    /* A frame loop: tether_client_poll never waits, and with no keeper it is the only thing
     * that runs the client's I/O (a non-blocking pass when one is due). */
    rec *r = caller_driven_without_keeper();
    CHECK(r != NULL);
    bool sent = false;
    int64_t deadline = now_ms() + scaled_ms(10000);
    while (get(r, &r->messages) < 1 && now_ms() < deadline) {
        size_t ran = 0;
        CHECK_STATUS(tether_client_poll(r->client, 0, &ran), TETHER_OK);
        if (!sent && get(r, &r->readies) >= 1) {
            uint64_t id = 0;
            CHECK_STATUS(tether_client_send_text(r->client, "frame", 5, &id), TETHER_OK);
            sent = true;
        }
        struct timespec frame = {0, 1000000}; /* the rest of a 1 ms frame */
        nanosleep(&frame, NULL);
    }
    CHECK(get(r, &r->messages) == 1 && strcmp(r->texts[0], "frame") == 0);
    free_and_check(r);
    rec_destroy(r);
}

/* The peer's count of pings received, or -1. */
static int peer_pings(void) {
    char reply[64];
    int pings = -1;
    if (peer_cmd(&P, "pings", reply, sizeof reply) != 0 || sscanf(reply, "OK %d", &pings) != 1)
        return -1;
    return pings;
}

TEST(caller_driven_io_keeper_keeps_the_heartbeat_while_nobody_polls) {
    /* Pings every 50 ms, a dead link after 300 ms without an answer: while this thread does
     * not poll, only the keeper thread can send the pings and read the pongs. */
    reset_peer();
    tether_config *cfg = test_config(P.url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_io_driver(cfg, TETHER_IO_DRIVER_CALLER), TETHER_OK);
    CHECK_STATUS(tether_config_set_keeper_after_ms(cfg, 20), TETHER_OK);
    CHECK_STATUS(tether_config_set_heartbeat(cfg, 50, 300), TETHER_OK);
    rec *r = started_with(cfg, true);
    CHECK(r != NULL);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    int before = peer_pings();
    CHECK(before >= 0);
    int64_t deadline = now_ms() + scaled_ms(10000);
    while (peer_pings() < before + 20 && now_ms() < deadline) {
        struct timespec pause = {0, 1000000}; /* between two questions to the peer */
        nanosleep(&pause, NULL);
    }
    CHECK_MSG(peer_pings() >= before + 20, "pings while nobody polled: %d", peer_pings() - before);
    /* Polling again: nothing was lost, the link never dropped. */
    uint64_t id = 0;
    CHECK_STATUS(tether_client_send_text(r->client, "still here", 10, &id), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    CHECK(get(r, &r->closes) == 0 && get(r, &r->errors) == 0);
    free_and_check(r);
    rec_destroy(r);
}
