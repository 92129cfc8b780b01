/*
 * Envelope mode: acks, failures, refused envelopes, durable sessions (session resets).
 * Against the shared test peer (tests/peers: tether-peer) or the envelope reference server;
 * every wait is bounded (TETHER_TIMEOUT_SCALE) and waits on events, never on sleeps.
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"

/* Envelope mode, against the Rust reference server (tests/peers: tether-ref-server).          */

TEST(envelope_acks) {
    static const char *const args[] = {"--token", "secret", "--key", "k3y", NULL};
    peer R;
    CHECK(ref_server_start(&R, args) == 0);
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = envelope_config(R.url, "c-acks", "secret", "k3y");
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_compression_threshold(cfg, 64), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "not ready: %s", r->last_error_msg);

    uint64_t id = 0;
    CHECK_STATUS(tether_client_send_text(r->client, "hello", 5, &id), TETHER_OK);
    CHECK_STATUS(tether_client_wait_acked(r->client, id, (uint64_t)scaled_ms(10000)), TETHER_OK);
    CHECK(wait_count(r, &r->acked, 1, 10000));
    tether_delivery d = TETHER_DELIVERY_UNKNOWN;
    CHECK_STATUS(tether_client_delivery_status(r->client, id, &d), TETHER_OK);
    CHECK(d == TETHER_DELIVERY_ACKED);
    /* A compressible payload over the threshold, and binary. */
    char big[512];
    memset(big, 'z', sizeof big);
    CHECK_STATUS(tether_client_send_text(r->client, big, sizeof big, NULL), TETHER_OK);
    const uint8_t bin[] = {1, 0, 2};
    CHECK_STATUS(tether_client_send_binary(r->client, bin, sizeof bin, &id), TETHER_OK);
    CHECK_STATUS(tether_client_wait_acked(r->client, id, (uint64_t)scaled_ms(10000)), TETHER_OK);
    /* The reference server echoes each delivered payload as a server message. */
    CHECK(wait_count(r, &r->messages, 3, 10000));
    CHECK(strcmp(r->texts[0], "hello") == 0);
    CHECK(r->last_kind == TETHER_MESSAGE_BINARY && r->last_len == 3);
    CHECK(peer_cmd(&R, "send c-acks pushed by the server", NULL, 0) == 0);
    CHECK(wait_count(r, &r->messages, 4, 10000));
    CHECK(strcmp(r->texts[3], "pushed by the server") == 0);
    CHECK(get(r, &r->acked) == 3 && get(r, &r->send_failed) == 0);
    tether_stats s = TETHER_STATS_INIT;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.messages_acked == 3 && s.awaiting_ack == 0);
    /* An unknown id. */
    CHECK_STATUS(tether_client_wait_acked(r->client, 999, 10), TETHER_ERR_INVALID_ARGUMENT);
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

TEST(envelope_failures) {
    static const char *const args[] = {"--token", "secret", "--key", "k3y", NULL};
    peer R;
    CHECK(ref_server_start(&R, args) == 0);
    char buf[256];

    /* A plain echo server answers hello with... hello: the handshake fails. */
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = envelope_config(P.url, "c-plain", NULL, NULL);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->errors, 1, 10000));
    CHECK_MSG(r->error_seen & (1ull << TETHER_ERR_HANDSHAKE), "errors %llx: %s",
              (unsigned long long)r->error_seen, r->last_error_msg);
    free_and_check(r);
    rec_destroy(r);

    /* A wrong token: the server rejects the session for good. */
    r = rec_new(false);
    CHECK(r != NULL);
    cfg = envelope_config(R.url, "c-token", "wrong", "k3y");
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->closed, 1, 10000));
    CHECK(r->error_seen & (1ull << TETHER_ERR_REJECTED));
    CHECK(strstr(r->last_error_msg, "bad token") != NULL);
    CHECK(r->closed_code == 1008 && r->readies == 0);
    free_and_check(r);
    rec_destroy(r);

    /* A wrong signing key: our messages are refused (nack), the server's are refused by us. */
    r = rec_new(false);
    CHECK(r != NULL);
    cfg = envelope_config(R.url, "c-key", "secret", "other key");
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    uint64_t id = 0;
    CHECK_STATUS(tether_client_send_text(r->client, "unsigned?", 9, &id), TETHER_OK);
    CHECK(wait_count(r, &r->send_failed, 1, 10000));
    CHECK(r->failed_seen == (1ull << TETHER_ERR_REJECTED) && r->last_failed_id == id);
    CHECK_STATUS(tether_client_wait_acked(r->client, id, 10), TETHER_ERR_REJECTED);
    CHECK(strstr(last_error(r->client, buf, sizeof buf), "signature") != NULL);
    CHECK(peer_cmd(&R, "send c-key forged?", NULL, 0) == 0);
    CHECK(wait_count(r, &r->errors, 1, 10000));
    CHECK(r->error_seen & (1ull << TETHER_ERR_INBOUND_REJECTED));
    CHECK(get(r, &r->messages) == 0);
    free_and_check(r);
    rec_destroy(r);

    /* No ack: the server stalls; after the retries the message fails with ACK_TIMEOUT. */
    r = rec_new(false);
    CHECK(r != NULL);
    cfg = envelope_config(R.url, "c-stall", "secret", "k3y");
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_ack_timeout(cfg, 100, 1), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    CHECK(peer_cmd(&R, "stall on", NULL, 0) == 0);
    CHECK_STATUS(tether_client_send_text(r->client, "into the void", 13, &id), TETHER_OK);
    CHECK_STATUS(tether_client_wait_acked(r->client, id, 20), TETHER_ERR_TIMEOUT);
    CHECK_STATUS(tether_client_wait_closed(r->client, 20), TETHER_ERR_TIMEOUT);
    bool failed = wait_count(r, &r->send_failed, 1, 10000);
    peer_cmd(&R, "stall off", NULL, 0);
    CHECK(failed);
    CHECK_MSG(r->failed_seen == (1ull << TETHER_ERR_ACK_TIMEOUT), "failed %llx",
              (unsigned long long)r->failed_seen);
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

/* A message within our limit but over the server's (the reference server closes with 1009
 * each time it arrives) fails after three refusals with TETHER_ERR_TOO_LARGE instead of
 * blocking the session, and the message queued behind it is delivered and acked. */
TEST(envelope_refused_as_too_large) {
    static const char *const args[] = {"--max-size", "65536", NULL};
    peer R;
    CHECK(ref_server_start(&R, args) == 0);
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = envelope_config(R.url, "c-poison", NULL, NULL);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_max_outbound_message_size(cfg, 1u << 20), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "not ready: %s", r->last_error_msg);

    const size_t big_len = 200000;
    char *big = malloc(big_len);
    CHECK(big != NULL);
    memset(big, 'x', big_len);
    uint64_t big_id = 0, small_id = 0;
    tether_status st = tether_client_send_text(r->client, big, big_len, &big_id);
    free(big);
    CHECK_STATUS(st, TETHER_OK);
    CHECK_STATUS(tether_client_send_text(r->client, "after", 5, &small_id), TETHER_OK);
    CHECK_STATUS(tether_client_wait_acked(r->client, small_id, (uint64_t)scaled_ms(20000)),
                 TETHER_OK);
    CHECK(wait_count(r, &r->send_failed, 1, 10000));
    pthread_mutex_lock(&r->mu);
    uint64_t failed_seen = r->failed_seen, failed_id = r->last_failed_id;
    char reason[256];
    snprintf(reason, sizeof reason, "%s", r->last_failed_reason);
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(failed_seen == (1ull << TETHER_ERR_TOO_LARGE), "failed %llx: %s",
              (unsigned long long)failed_seen, reason);
    CHECK(failed_id == big_id);
    CHECK_MSG(strstr(reason, "1009") != NULL && strstr(reason, "too large") != NULL, "reason: %s",
              reason);
    CHECK_STATUS(tether_client_wait_acked(r->client, big_id, 10), TETHER_ERR_TOO_LARGE);
    tether_delivery d = TETHER_DELIVERY_UNKNOWN;
    CHECK_STATUS(tether_client_delivery_status(r->client, big_id, &d), TETHER_OK);
    CHECK(d == TETHER_DELIVERY_FAILED);
    /* The ack's callback may still be on its way to the dispatcher: wait for it. */
    CHECK(wait_count(r, &r->acked, 1, 10000));
    CHECK(get(r, &r->acked) == 1 && get(r, &r->send_failed) == 1);
    /* One reconnect per refusal at most (not one every few milliseconds forever); the session
     * is up again. */
    tether_stats s = TETHER_STATS_INIT;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK_MSG(s.reconnects >= 1 && s.reconnects <= 3, "reconnects %llu",
              (unsigned long long)s.reconnects);
    CHECK(tether_client_state(r->client) == TETHER_STATE_READY);
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

/* Durable sessions (protocol revision 2): a side that lost its state is reported, and nothing */
/* is dropped as a false duplicate.                                                           */

/* Send five texts "<prefix>-<i>" and wait for their acks and the server's echoes. */
static bool send_five(rec *r, const char *prefix) {
    int acked = get(r, &r->acked), messages = get(r, &r->messages);
    for (int i = 0; i < 5; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "%s-%d", prefix, i);
        if (tether_client_send_text(r->client, text, (size_t)n, NULL) != TETHER_OK) return false;
    }
    return wait_count(r, &r->acked, acked + 5, 10000) &&
           wait_count(r, &r->messages, messages + 5, 10000);
}

/* The server process is killed (SIGKILL) and a fresh one starts on the same port: every
 * message it sends afterwards reaches the application, and on_session_reset reports the
 * server's lost state (once, before on_ready) with the five acked ids at risk. */
TEST(session_reset_server_lost) {
    peer R;
    CHECK(ref_server_start(&R, NULL) == 0);
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = envelope_config(R.url, "c-durable-server", NULL, NULL);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    CHECK(send_five(r, "before"));
    CHECK(get(r, &r->session_resets) == 0);

    CHECK(ref_server_kill_and_restart(&R, NULL) == 0);
    CHECK(wait_count(r, &r->readies, 2, 10000));
    enum { AFTER = 300 };
    for (int i = 0; i < AFTER; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "send c-durable-server after-%d", i);
        CHECK(peer_cmd(&R, cmd, NULL, 0) == 0);
    }
    CHECK_MSG(wait_count(r, &r->after_messages, AFTER, 20000), "%d of %d after the restart",
              get(r, &r->after_messages), AFTER);
    pthread_mutex_lock(&r->mu);
    tether_session_reset reset = r->last_reset;
    int resets = r->session_resets, out_of_order = r->after_out_of_order;
    int readies_at_reset = r->readies_at_reset;
    pthread_mutex_unlock(&r->mu);
    CHECK(out_of_order == 0);
    CHECK_MSG(resets == 1, "%d session resets", resets);
    CHECK(readies_at_reset == 1); /* reported before the second on_ready */
    CHECK(reset.server_lost_state && !reset.client_state_lost && !reset.inbound_may_repeat);
    CHECK(reset.acked_at_risk_first == 1 && reset.acked_at_risk_last == 5);
    CHECK(reset.resends_may_duplicate_first == 0 && reset.resends_may_duplicate_last == 0);
    CHECK(reset.server_revision == 2);
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

/* A program built before on_session_reset (its struct_size ends before it) never has it
 * called, even though its struct's memory there holds a valid callback: the library reads only
 * struct_size bytes. The server's restart is reported only through the second on_ready, and
 * on_session_reset comes before that on_ready when it is called at all. */
TEST(session_reset_beyond_struct_size_reads_as_null) {
    peer R;
    CHECK(ref_server_start(&R, NULL) == 0);
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = envelope_config(R.url, "c-durable-old-struct", NULL, NULL);
    CHECK(cfg != NULL);
    tether_callbacks cb = all_callbacks(); /* on_session_reset set */
    cb.struct_size = offsetof(tether_callbacks, on_session_reset);
    CHECK_STATUS(tether_client_new(cfg, &cb, r, rec_finalize, &r->client), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    CHECK(send_five(r, "before"));
    CHECK(ref_server_kill_and_restart(&R, NULL) == 0);
    CHECK(wait_count(r, &r->readies, 2, 10000));
    CHECK_MSG(get(r, &r->session_resets) == 0, "%d session resets", get(r, &r->session_resets));
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

/* A second client with the same session id (a restarted process): the server's application
 * gets its messages (it used to take them for duplicates), and on_session_reset says the
 * client's state was lost. */
TEST(session_reset_client_lost) {
    peer R;
    CHECK(ref_server_start(&R, NULL) == 0);
    char reply[512];
    for (int incarnation = 0; incarnation < 2; incarnation++) {
        rec *r = rec_new(false);
        CHECK(r != NULL);
        tether_config *cfg = envelope_config(R.url, "c-durable-client", NULL, NULL);
        CHECK(cfg != NULL);
        CHECK_STATUS(start(r, cfg), TETHER_OK);
        tether_config_free(cfg);
        CHECK(wait_count(r, &r->readies, 1, 10000));
        CHECK(send_five(r, incarnation == 0 ? "first" : "second"));
        CHECK(peer_cmd(&R, "stats", reply, sizeof reply) == 0);
        const char *expected = incarnation == 0 ? "\"delivered\":5," : "\"delivered\":10,";
        CHECK_MSG(strstr(reply, expected) != NULL, "%s", reply);
        CHECK(strstr(reply, "\"duplicates\":0,") != NULL);
        pthread_mutex_lock(&r->mu);
        tether_session_reset reset = r->last_reset;
        int resets = r->session_resets, readies_at_reset = r->readies_at_reset;
        pthread_mutex_unlock(&r->mu);
        if (incarnation == 0) {
            CHECK(resets == 0);
        } else {
            CHECK_MSG(resets == 1, "%d session resets", resets);
            CHECK(readies_at_reset == 0);
            CHECK(reset.client_state_lost && reset.inbound_may_repeat && !reset.server_lost_state);
            CHECK(reset.acked_at_risk_first == 0 && reset.resends_may_duplicate_first == 0);
        }
        free_and_check(r);
        rec_destroy(r);
    }
    peer_stop(&R);
}
