/*
 * The outbox: queueing while disconnected, queueing off, full queues, drop-oldest, close drains it.
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

TEST(queued_while_disconnected) {
    reset_peer();
    rec *r = rec_new(true);
    CHECK(r != NULL); /* poll mode */
    tether_config *cfg = test_config(P.url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    /* Take the server away: stop listening, drop the connection. */
    CHECK(peer_cmd(&P, "stop", NULL, 0) == 0);
    CHECK(peer_cmd(&P, "drop", NULL, 0) == 0);
    CHECK(wait_count(r, &r->closes, 1, 10000));
    CHECK(wait_count(r, &r->errors, 2, 10000)); /* the drop, then a refused reconnect */
    CHECK(tether_client_state(r->client) != TETHER_STATE_READY);
    const char *words[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        uint64_t id = 0;
        CHECK_STATUS(tether_client_send_text(r->client, words[i], strlen(words[i]), &id), TETHER_OK);
        CHECK(id == (uint64_t)i + 1);
    }
    tether_stats s = TETHER_STATS_INIT;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.outbox_messages == 3);
    CHECK(peer_cmd(&P, "restart", NULL, 0) == 0);
    CHECK(wait_count(r, &r->messages, 3, 15000));
    for (int i = 0; i < 3; i++) CHECK(strcmp(r->texts[i], words[i]) == 0);
    CHECK(get(r, &r->readies) == 2);
    CHECK(get(r, &r->send_failed) == 0);
    free_and_check(r);
    rec_destroy(r);
}

TEST(not_ready_when_queueing_is_off) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", unused_port());
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_queue_while_disconnected(cfg, false), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK_STATUS(tether_client_send_text(r->client, "x", 1, NULL), TETHER_ERR_NOT_READY);
    char msg[256];
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "not ready") != NULL);
    /* Nothing listens there: connect attempts fail and are reported. */
    CHECK(wait_count(r, &r->errors, 1, 10000));
    CHECK(r->error_seen & (1ull << TETHER_ERR_CONNECT_FAILED));
    free_and_check(r);
    rec_destroy(r);
}

TEST(queue_full_and_undelivered) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", unused_port());
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_outbox_limits(cfg, 2, 1 << 20), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK_STATUS(tether_client_send_text(r->client, "a", 1, NULL), TETHER_OK);
    CHECK_STATUS(tether_client_send_text(r->client, "b", 1, NULL), TETHER_OK);
    uint64_t id = 0;
    CHECK_STATUS(tether_client_send_text(r->client, "c", 1, &id), TETHER_ERR_QUEUE_FULL);
    CHECK(id == 0);
    char msg[256];
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "outbox full") != NULL);
    /* Closing while disconnected fails the queue at once: each message is reported. */
    CHECK_STATUS(tether_client_close(r->client, 1000, "bye"), TETHER_OK);
    CHECK_STATUS(tether_client_send_text(r->client, "d", 1, NULL), TETHER_ERR_CLOSED);
    CHECK(wait_count(r, &r->closed, 1, 10000));
    pthread_mutex_lock(&r->mu);
    bool ok = r->send_failed == 2 && r->failed_seen == (1ull << TETHER_ERR_CLOSED) &&
              r->undelivered == 2 && r->closed_code == 1000;
    pthread_mutex_unlock(&r->mu);
    CHECK(ok);
    free_and_check(r);
    rec_destroy(r);
}

TEST(drop_oldest_policy) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", unused_port());
    rec *r = rec_new(true);
    CHECK(r != NULL);
    tether_config *cfg = test_config(url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_outbox_limits(cfg, 2, 1 << 20), TETHER_OK);
    CHECK_STATUS(tether_config_set_overflow_policy(cfg, TETHER_OVERFLOW_DROP_OLDEST, 0), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    for (int i = 0; i < 3; i++) CHECK_STATUS(tether_client_send_text(r->client, "m", 1, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->send_failed, 1, 10000));
    CHECK(r->last_failed_id == 1);
    CHECK(r->failed_seen == (1ull << TETHER_ERR_DROPPED));
    free_and_check(r);
    rec_destroy(r);
}

TEST(close_drains_the_outbox) {
    int received0 = quiet_peer();
    CHECK(received0 >= 0);
    rec *r = started(P.url, false);
    CHECK(r != NULL);
    /* Once ready (closing while disconnected fails the queue at once instead). */
    CHECK(wait_count(r, &r->readies, 1, 10000));
    for (int i = 0; i < 100; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "m%d", i);
        CHECK_STATUS(tether_client_send_text(r->client, text, (size_t)n, NULL), TETHER_OK);
    }
    /* Free right away: the queued messages go out before the close frame. */
    free_and_check(r);
    CHECK(r->send_failed == 0 && r->closed == 1 && r->undelivered == 0);
    CHECK(r->written_up_to == 100);
    int received = peer_received() - received0;
    CHECK_MSG(received == 100, "peer received %d", received);
    peer_cmd(&P, "echo on", NULL, 0);
    rec_destroy(r);
}

/* The persistent outbox: one live client per file (TETHER_ERR_STORAGE for a second), messages
 * undelivered at close reported as TETHER_ERR_KEPT, and the next client on the file delivers
 * them in order with ids continuing (the SIGKILL soak is core/tests/persistence.rs). */
TEST(persistent_outbox_keeps_messages_for_the_next_client) {
    peer R;
    CHECK(ref_server_start(&R, NULL) == 0);
    char path[128];
    snprintf(path, sizeof path, "/tmp/tether-c-outbox-%d", (int)getpid());
    unlink(path);

    /* Nobody listens on port 1: the messages wait in the outbox. */
    rec *first = rec_new(false);
    CHECK(first != NULL);
    tether_config *cfg = envelope_config("ws://127.0.0.1:1/", "c-persist", NULL, NULL);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_outbox_path(cfg, path), TETHER_OK);
    CHECK_STATUS(tether_config_set_outbox_sync(cfg, TETHER_OUTBOX_SYNC_NONE), TETHER_OK);
    CHECK_STATUS(tether_config_set_outbox_sync(cfg, 7), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_config_set_outbox_path(cfg, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(start(first, cfg), TETHER_OK);
    uint64_t ids[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "kept %d", i);
        CHECK_STATUS(tether_client_send_text(first->client, text, (size_t)n, &ids[i]), TETHER_OK);
    }

    /* A second client on the same file is refused, naming the file. */
    rec *second = rec_new(false);
    CHECK(second != NULL);
    CHECK_STATUS(start(second, cfg), TETHER_ERR_STORAGE);
    CHECK(second->client == NULL);
    tether_config_free(cfg);
    rec_destroy(second);

    free_and_check(first);
    CHECK_MSG(first->send_failed == 3 && first->failed_seen == (1ull << TETHER_ERR_KEPT),
              "failed %d, statuses %llx: %s", first->send_failed,
              (unsigned long long)first->failed_seen, first->last_failed_reason);
    rec_destroy(first);

    /* The next client with the file delivers them; the server echoes each one. */
    rec *next = rec_new(false);
    CHECK(next != NULL);
    cfg = envelope_config(R.url, "c-persist", NULL, NULL);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_outbox_path(cfg, path), TETHER_OK);
    CHECK_STATUS(start(next, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(next, &next->messages, 3, 10000));
    CHECK(strcmp(next->texts[0], "kept 0") == 0 && strcmp(next->texts[1], "kept 1") == 0 &&
          strcmp(next->texts[2], "kept 2") == 0);
    uint64_t id = 0;
    CHECK_STATUS(tether_client_send_text(next->client, "after", 5, &id), TETHER_OK);
    CHECK_MSG(id == ids[2] + 1, "ids continue: %llu after %llu", (unsigned long long)id,
              (unsigned long long)ids[2]);
    CHECK_STATUS(tether_client_wait_acked(next->client, id, (uint64_t)scaled_ms(10000)), TETHER_OK);
    free_and_check(next);
    rec_destroy(next);
    unlink(path);
    peer_stop(&R);
}
