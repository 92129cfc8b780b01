/*
 * Messages both ways: echo in callback and poll mode, empty, too large and invalid payloads.
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

/* Tests against the peer.                                                                     */

static void echo_test(bool poll_mode) {
    reset_peer();
    rec *r = rec_new(poll_mode);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, poll_mode);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(r->client != NULL);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "never ready: %s", r->last_error_msg);
    CHECK(tether_client_state(r->client) == TETHER_STATE_READY);
    CHECK(get(r, &r->opens) == 1);

    uint64_t id1 = 0, id2 = 0;
    CHECK_STATUS(tether_client_send_text(r->client, "hello", 5, &id1), TETHER_OK);
    const uint8_t bin[] = {0, 1, 2, 255, 0};
    CHECK_STATUS(tether_client_send_binary(r->client, bin, sizeof bin, &id2), TETHER_OK);
    CHECK(id1 == 1 && id2 == 2);
    CHECK(wait_count(r, &r->messages, 2, 10000));
    pthread_mutex_lock(&r->mu);
    bool text_ok = strcmp(r->texts[0], "hello") == 0;
    bool bin_ok = r->last_kind == TETHER_MESSAGE_BINARY && r->last_len == sizeof bin &&
                  memcmp(r->last_data, bin, sizeof bin) == 0;
    bool counts_ok = r->text_messages == 1 && r->binary_messages == 1;
    pthread_mutex_unlock(&r->mu);
    CHECK(text_ok);
    CHECK(bin_ok);
    CHECK(counts_ok);
    /* Written reports are cumulative: both messages are on the wire before their echoes. */
    CHECK(get64(r, &r->written_up_to) >= 2);
    tether_delivery d = TETHER_DELIVERY_UNKNOWN;
    CHECK_STATUS(tether_client_delivery_status(r->client, id2, &d), TETHER_OK);
    CHECK(d == TETHER_DELIVERY_WRITTEN);
    CHECK_STATUS(tether_client_delivery_status(r->client, 999, &d), TETHER_OK);
    CHECK(d == TETHER_DELIVERY_UNKNOWN);
    /* Raw mode has no acks. */
    CHECK_STATUS(tether_client_wait_acked(r->client, id1, 10), TETHER_ERR_NOT_SUPPORTED);
    char buf[256];
    CHECK(strstr(last_error(r->client, buf, sizeof buf), "raw mode") != NULL);

    tether_stats s;
    memset(&s, 0xab, sizeof s);
    s.struct_size = sizeof s; /* every other field is garbage until written */
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.messages_sent == 2 && s.bytes_sent == 5 + sizeof bin);
    CHECK(s.messages_received == 2 && s.bytes_received == 5 + sizeof bin);
    CHECK(s.reconnects == 0 && s.send_failures == 0 && s.messages_acked == 0);

    if (poll_mode) {
        /* Callbacks ran on this thread. */
        CHECK(pthread_equal(r->cb_thread, pthread_self()));
        /* Polling a client in poll mode with nothing pending is cheap and runs nothing. */
        size_t ran = 99;
        CHECK_STATUS(tether_client_poll(r->client, 0, &ran), TETHER_OK);
        CHECK(ran == 0);
        int iterations = scaled_ms(1) > 1 ? 1000 : 200000;
        int64_t t0 = now_ms();
        for (int i = 0; i < iterations; i++) {
            if (tether_client_poll(r->client, 16, &ran) != TETHER_OK || ran != 0) break;
        }
        int64_t took = now_ms() - t0;
        CHECK_MSG(took < scaled_ms(2000), "%d idle polls took %lld ms", iterations,
                  (long long)took);
        if (scaled_ms(1) == 1) printf("    %d idle polls: %lld ms\n", iterations, (long long)took);
        /* A bounded wait with nothing to deliver returns after about the timeout. */
        t0 = now_ms();
        CHECK_STATUS(tether_client_poll_timeout(r->client, 1, 50, &ran), TETHER_OK);
        CHECK(ran == 0 && now_ms() - t0 >= 45);
        t0 = now_ms();
        CHECK_STATUS(tether_client_poll_timeout(r->client, 0, 50, &ran), TETHER_OK);
        CHECK(ran == 0 && now_ms() - t0 >= 45);
        /* ... and returns as soon as an event comes. */
        CHECK(peer_cmd(&P, "send-text wake up", NULL, 0) == 0);
        t0 = now_ms();
        CHECK_STATUS(tether_client_poll_timeout(r->client, 0, (uint64_t)scaled_ms(10000), &ran),
                     TETHER_OK);
        CHECK(ran == 1 && now_ms() - t0 < scaled_ms(5000));
        CHECK(strcmp(r->texts[2], "wake up") == 0);
    } else {
        /* Callbacks ran on the dispatcher thread. */
        pthread_mutex_lock(&r->mu);
        bool other = !pthread_equal(r->cb_thread, pthread_self());
        pthread_mutex_unlock(&r->mu);
        CHECK(other);
        size_t ran = 0;
        CHECK_STATUS(tether_client_poll(r->client, 0, &ran), TETHER_ERR_WRONG_MODE);
    }

    free_and_check(r);
    /* free closed the client gracefully: on_closed came last, with the user close. */
    CHECK(get(r, &r->closed) == (poll_mode ? 0 : 1));
    if (!poll_mode) CHECK(r->closed_code == 1000);
    rec_destroy(r);
}

TEST(echo_callback_mode) { echo_test(false); }
TEST(echo_poll_mode) { echo_test(true); }

TEST(zero_length_messages) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    CHECK_STATUS(tether_client_send_text(r->client, NULL, 0, NULL), TETHER_OK);
    CHECK_STATUS(tether_client_send_binary(r->client, NULL, 0, NULL), TETHER_OK);
    CHECK_STATUS(tether_client_send_text(r->client, "", 0, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 3, 10000));
    pthread_mutex_lock(&r->mu);
    bool ok = r->last_len == 0 && r->last_data_nonnull && r->text_messages == 2 &&
              r->binary_messages == 1;
    pthread_mutex_unlock(&r->mu);
    CHECK(ok);
    free_and_check(r);
    rec_destroy(r);
}

TEST(too_large_and_invalid_payloads) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_max_outbound_message_size(cfg, 1024), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    char *big = calloc(1, 4096);
    CHECK(big != NULL);
    memset(big, 'a', 4096);
    uint64_t id = 0;
    int st1 = tether_client_send_text(r->client, big, 1024, &id);
    int st2 = tether_client_send_text(r->client, big, 1025, &id);
    char msg[256];
    last_error(r->client, msg, sizeof msg);
    /* A huge length is refused before a single byte is read. */
    int st3 = tether_client_send_binary(r->client, (const uint8_t *)big, SIZE_MAX, &id);
    int st4 = tether_client_send_text(r->client, big, SIZE_MAX / 2, &id);
    free(big);
    CHECK_STATUS(st1, TETHER_OK);
    CHECK(id == 1);
    CHECK_STATUS(st2, TETHER_ERR_TOO_LARGE);
    CHECK_MSG(strstr(msg, "1025") && strstr(msg, "1024"), "message: %s", msg);
    CHECK_STATUS(st3, TETHER_ERR_TOO_LARGE);
    CHECK_STATUS(st4, TETHER_ERR_TOO_LARGE);
    /* Text must be UTF-8. */
    CHECK_STATUS(tether_client_send_text(r->client, "\xff\xfe", 2, &id), TETHER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(r->client, msg, sizeof msg), "UTF-8") != NULL);
    CHECK(id == 1);
    free_and_check(r);
    rec_destroy(r);
}
