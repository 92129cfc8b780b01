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
