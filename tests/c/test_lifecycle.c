/*
 * Client lifecycle: use after close, free from another thread or from inside a callback, calls inside callbacks, many clients, user_data finalizer.
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

TEST(use_after_close) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    char msg[256];
    CHECK_STATUS(tether_client_close(r->client, 1001, "x"), TETHER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "1001") != NULL);
    char reason[200];
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    CHECK_STATUS(tether_client_close(r->client, 1000, reason), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_client_close(r->client, 1000, "\xff"), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_client_close(r->client, 4001, "bye now"), TETHER_OK);
    CHECK_STATUS(tether_client_close(r->client, 4001, "again"), TETHER_OK); /* no-op */
    CHECK_STATUS(tether_client_send_text(r->client, "late", 4, NULL), TETHER_ERR_CLOSED);
    CHECK_STATUS(tether_client_send_binary(r->client, NULL, 0, NULL), TETHER_ERR_CLOSED);
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "closed") != NULL);
    CHECK_STATUS(tether_client_wait_closed(r->client, (uint64_t)scaled_ms(10000)), TETHER_OK);
    CHECK(tether_client_state(r->client) == TETHER_STATE_CLOSED);
    CHECK(wait_count(r, &r->closed, 1, 10000));
    CHECK(r->closed_code == 4001 && strcmp(r->closed_reason, "bye now") == 0);
    char reply[128];
    CHECK(peer_cmd(&P, "last-close", reply, sizeof reply) == 0);
    CHECK_MSG(strcmp(reply, "OK 4001 bye now") == 0, "peer saw: %s", reply);
    tether_stats s = TETHER_STATS_INIT;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK); /* still readable */
    free_and_check(r);
    rec_destroy(r);
}

typedef struct sender {
    tether_client *client;
    atomic_int sent;
    int final_status;
    int bad_status;
    atomic_bool done;
} sender;

static void *send_loop(void *arg) {
    sender *s = arg;
    for (;;) {
        int st = tether_client_send_text(s->client, "flood", 5, NULL);
        if (st == TETHER_OK) {
            atomic_fetch_add(&s->sent, 1);
            continue;
        }
        if (st == TETHER_ERR_QUEUE_FULL) {
            sched_yield();
            continue;
        }
        s->final_status = st;
        if (st != TETHER_ERR_CLOSED && st != TETHER_ERR_INVALID_HANDLE) s->bad_status = st;
        break;
    }
    atomic_store(&s->done, true);
    return NULL;
}

TEST(free_from_another_thread_while_sends_run) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_outbox_limits(cfg, 256, 1 << 20), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    enum { N = 4 };
    sender senders[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        senders[i].client = r->client;
        atomic_init(&senders[i].sent, 0);
        atomic_init(&senders[i].done, false);
        senders[i].final_status = -1;
        senders[i].bad_status = 0;
        CHECK(pthread_create(&threads[i], NULL, send_loop, &senders[i]) == 0);
    }
    /* Free once every sender is demonstrably running (bounded). */
    int64_t deadline = now_ms() + scaled_ms(10000);
    for (int i = 0; i < N; i++) {
        while (atomic_load(&senders[i].sent) < 20 && !atomic_load(&senders[i].done) &&
               now_ms() < deadline) {
            sched_yield();
        }
    }
    tether_client_free(r->client);
    pthread_mutex_lock(&r->mu);
    r->freed = true;
    pthread_mutex_unlock(&r->mu);
    /* Every sender sees the end and stops. */
    bool all_done = true;
    for (int i = 0; i < N; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += scaled_ms(10000) / 1000;
        if (pthread_timedjoin_np(threads[i], NULL, &ts) != 0) all_done = false;
    }
    CHECK_MSG(all_done, "a sender did not stop after free");
    int total = 0;
    for (int i = 0; i < N; i++) {
        CHECK_MSG(senders[i].bad_status == 0, "sender %d ended with %s", i,
                  tether_status_str(senders[i].bad_status));
        total += atomic_load(&senders[i].sent);
    }
    CHECK(total >= N * 20);
    CHECK(get(r, &r->finalized) == 1);
    CHECK(get(r, &r->after_free) == 0);
    CHECK(get(r, &r->overlap) == 0);
    rec_destroy(r);
}

static void free_in_callback_test(bool poll_mode) {
    reset_peer();
    rec *r = rec_new(poll_mode);
    CHECK(r != NULL);
    r->free_on_message = true;
    tether_config *cfg = test_config(P.url, poll_mode);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    tether_client *stale = r->client;
    /* The server pushes two messages; the first one's callback frees the client, so the
     * second one must never reach a callback. */
    CHECK(peer_cmd(&P, "send-text free me", NULL, 0) == 0);
    CHECK(peer_cmd(&P, "send-text never seen", NULL, 0) == 0);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    /* The finalizer runs right after the callback that freed the client returned. */
    CHECK(wait_count(r, &r->finalized, 1, 10000));
    CHECK(get(r, &r->finalize_in_cb) == 0);
    CHECK_STATUS(tether_client_send_text(stale, "x", 1, NULL), TETHER_ERR_INVALID_HANDLE);
    if (poll_mode) CHECK_STATUS(tether_client_poll(stale, 0, NULL), TETHER_ERR_INVALID_HANDLE);
    tether_client_free(stale); /* already freed: ignored */
    CHECK(get(r, &r->after_inner_free) == 0);
    CHECK(get(r, &r->messages) == 1);
    CHECK(get(r, &r->finalized) == 1);
    rec_destroy(r);
}

TEST(free_inside_callback_thread_mode) { free_in_callback_test(false); }
TEST(free_inside_callback_poll_mode) { free_in_callback_test(true); }

TEST(send_and_close_inside_callbacks) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    r->reply_budget = 50; /* ping-pong with the echo server, from inside on_message */
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    CHECK_STATUS(tether_client_send_text(r->client, "ping", 4, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 51, 15000));
    CHECK_STATUS(r->inner_status, TETHER_OK);
    pthread_mutex_lock(&r->mu);
    r->close_on_message = true;
    pthread_mutex_unlock(&r->mu);
    CHECK_STATUS(tether_client_send_text(r->client, "last", 4, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->closed, 1, 10000));
    CHECK(r->closed_code == 4000 && strcmp(r->closed_reason, "done") == 0);
    free_and_check(r);
    rec_destroy(r);
}

TEST(many_clients) {
    reset_peer();
    enum { N = 16 };
    rec *recs[N] = {0};
    tether_config *cfg = test_config(P.url, false);
    bool ok = cfg != NULL;
    for (int i = 0; ok && i < N; i++) {
        recs[i] = rec_new(false);
        ok = recs[i] != NULL && start(recs[i], cfg) == TETHER_OK;
    }
    tether_config_free(cfg);
    for (int i = 0; ok && i < N; i++) ok = wait_count(recs[i], &recs[i]->readies, 1, 10000);
    for (int i = 0; ok && i < N; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "c%d", i);
        ok = tether_client_send_text(recs[i]->client, text, (size_t)n, NULL) == TETHER_OK;
    }
    for (int i = 0; ok && i < N; i++) {
        ok = wait_count(recs[i], &recs[i]->messages, 1, 10000);
        char want[16];
        snprintf(want, sizeof want, "c%d", i);
        ok = ok && strcmp(recs[i]->texts[0], want) == 0; /* each got its own echo */
    }
    for (int i = 0; i < N && recs[i]; i++) {
        tether_client_free(recs[i]->client);
        if (get(recs[i], &recs[i]->finalized) != 1) ok = false;
        rec_destroy(recs[i]);
    }
    CHECK(ok);
}

/* Heap user_data released by its finalizer: valgrind and LeakSanitizer check it is freed. */
typedef struct app {
    char *buffer;
    int messages;
} app;

static void app_free(void *ud) {
    app *a = ud;
    free(a->buffer);
    free(a);
}

static void app_on_message(void *ud, const uint8_t *data, size_t len, tether_message_type kind) {
    app *a = ud;
    (void)kind;
    memcpy(a->buffer, data, len < 63 ? len : 63);
    a->messages++;
}

TEST(user_data_is_finalized) {
    reset_peer();
    app *a = calloc(1, sizeof *a);
    CHECK(a != NULL);
    a->buffer = calloc(1, 64);
    tether_config *cfg = test_config(P.url, true);
    CHECK(cfg != NULL);
    tether_callbacks cb = TETHER_CALLBACKS_INIT;
    cb.on_message = app_on_message;
    tether_client *client = NULL;
    CHECK_STATUS(tether_client_new(cfg, &cb, a, app_free, &client), TETHER_OK);
    tether_config_free(cfg);
    CHECK_STATUS(tether_client_send_text(client, "owned", 5, NULL), TETHER_OK);
    int64_t deadline = now_ms() + scaled_ms(10000);
    while (a->messages == 0 && now_ms() < deadline) {
        CHECK_STATUS(tether_client_poll_timeout(client, 0, 100, NULL), TETHER_OK);
    }
    CHECK(a->messages == 1 && strcmp(a->buffer, "owned") == 0);
    tether_client_free(client); /* frees `a` through app_free */
}
