/*
 * Connections: server-forced ends, refused upgrades, retries, resolving past a black hole, heartbeat, TLS.
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

TEST(server_forced_disconnects) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));

    /* A TCP drop without a close frame: error, close 1006, reconnect. */
    CHECK(peer_cmd(&P, "drop", NULL, 0) == 0);
    CHECK(wait_count(r, &r->readies, 2, 10000));
    pthread_mutex_lock(&r->mu);
    bool ok = (r->error_seen & (1ull << TETHER_ERR_CONNECTION_LOST)) && r->closes == 1 &&
              r->closes_will_reconnect == 1 && r->last_close_code == 1006 && r->reconnectings >= 1;
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(ok, "errors %llx closes %d code %u", (unsigned long long)r->error_seen, r->closes,
              r->last_close_code);

    /* A close frame from the server with 1012 (service restart): not a normal end (only the
     * application's close and the server's 1000/1001 are: Disconnect::is_normal), so on_error
     * first, then close 1012, reconnect. */
    int errors_before = get(r, &r->errors);
    CHECK(peer_cmd(&P, "close 1012 service restart", NULL, 0) == 0);
    CHECK(wait_count(r, &r->readies, 3, 10000));
    pthread_mutex_lock(&r->mu);
    ok = r->errors == errors_before + 1 && strstr(r->last_error_msg, "1012") != NULL &&
         r->closes == 2 && r->last_close_code == 1012 &&
         strcmp(r->last_close_reason, "service restart") == 0;
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(ok, "errors %d (before %d) msg %s", r->errors, errors_before, r->last_error_msg);

    /* 1001 (going away) is a normal end: close and reconnect, no error. */
    errors_before = get(r, &r->errors);
    CHECK(peer_cmd(&P, "close 1001 going away", NULL, 0) == 0);
    CHECK(wait_count(r, &r->readies, 4, 10000));
    pthread_mutex_lock(&r->mu);
    ok = r->errors == errors_before && r->closes == 3 && r->last_close_code == 1001;
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(ok, "errors %d (before %d) closes %d code %u", r->errors, errors_before, r->closes,
              r->last_close_code);

    /* The link works after all three. */
    CHECK_STATUS(tether_client_send_text(r->client, "after", 5, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    CHECK(strcmp(r->texts[0], "after") == 0);
    tether_stats s = TETHER_STATS_INIT;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.reconnects == 3);
    free_and_check(r);
    rec_destroy(r);
}

TEST(server_side_failures) {
    reset_peer();
    rec *r = rec_new(true);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_max_inbound_size(cfg, 1000, 1000), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));

    /* A text message pushed by the server. */
    CHECK(peer_cmd(&P, "send-text hi there", NULL, 0) == 0);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    CHECK(strcmp(r->texts[0], "hi there") == 0);

    /* Oversized inbound message: closed with 1009, reported, reconnected. */
    CHECK(peer_cmd(&P, "send-oversized 5000", NULL, 0) == 0);
    CHECK(wait_count(r, &r->readies, 2, 10000));
    CHECK(r->error_seen & (1ull << TETHER_ERR_TOO_LARGE));
    CHECK_MSG(r->closes >= 1 && r->last_close_code == 1009, "close code %u", r->last_close_code);

    /* Invalid UTF-8 in a text frame: a protocol error (1007), not a crash. */
    CHECK(peer_cmd(&P, "send-invalid-utf8", NULL, 0) == 0);
    CHECK(wait_count(r, &r->readies, 3, 10000));
    CHECK(r->error_seen & (1ull << TETHER_ERR_PROTOCOL));
    CHECK(r->last_close_code == 1007);
    CHECK(strstr(r->last_error_msg, "UTF-8") != NULL);
    free_and_check(r);
    rec_destroy(r);
}

TEST(rejected_upgrade_is_final) {
    reset_peer();
    CHECK(peer_cmd(&P, "reject 403", NULL, 0) == 0);
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    bool closed = wait_count(r, &r->closed, 1, 10000);
    peer_cmd(&P, "reject off", NULL, 0);
    CHECK(closed);
    CHECK(r->error_seen & (1ull << TETHER_ERR_CONNECT_FAILED));
    CHECK_MSG(strstr(r->last_error_msg, "403") != NULL, "message: %s", r->last_error_msg);
    CHECK(r->reconnectings == 0);
    CHECK(tether_client_state(r->client) == TETHER_STATE_CLOSED);
    CHECK_STATUS(tether_client_send_text(r->client, "x", 1, NULL), TETHER_ERR_CLOSED);
    free_and_check(r);
    rec_destroy(r);
}

TEST(retries_exhausted) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", unused_port());
    rec *r = rec_new(true);
    CHECK(r != NULL);
    tether_config *cfg = test_config(url, true);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_max_reconnect_attempts(cfg, 2), TETHER_OK);
    CHECK_STATUS(tether_config_set_backoff(cfg, 5, 20, 2.0), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK_STATUS(tether_client_send_text(r->client, "lost", 4, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->closed, 1, 15000));
    CHECK(r->error_seen & (1ull << TETHER_ERR_RETRIES_EXHAUSTED));
    CHECK(r->error_seen & (1ull << TETHER_ERR_CONNECT_FAILED));
    CHECK(r->reconnectings == 2);
    CHECK(r->failed_seen == (1ull << TETHER_ERR_CONNECTION_FAILED));
    CHECK(r->undelivered == 1 && r->closed_code == 1006);
    free_and_check(r);
    rec_destroy(r);
}

/* Messages queued for a server that refuses the upgrade with a final status (403) fail at once,
 * each with on_send_failed, and the client closes: no retry, although the backoff is long and
 * the retry budget large (had the 403 been retried, the wait below would run out). */
TEST(final_refusal_fails_queued_messages_at_once) {
    enum { N = 20 };
    reset_peer();
    /* Stalled, the peer does not answer the upgrade yet: the sends below are certainly queued
     * before the refusal arrives. */
    CHECK(peer_cmd(&P, "stall on", NULL, 0) == 0);
    CHECK(peer_cmd(&P, "reject 403", NULL, 0) == 0);
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_backoff(cfg, (uint64_t)scaled_ms(5000), 30000, 2.0), TETHER_OK);
    CHECK_STATUS(tether_config_set_max_reconnect_attempts(cfg, 10), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    uint64_t want_ids = 0;
    for (int i = 0; i < N; i++) {
        uint64_t id = 0;
        CHECK_STATUS(tether_client_send_text(r->client, "queued", 6, &id), TETHER_OK);
        CHECK(id >= 1 && id < 64);
        want_ids |= 1ull << id;
    }
    CHECK(get(r, &r->send_failed) == 0);
    CHECK(peer_cmd(&P, "stall off", NULL, 0) == 0);
    int64_t t0 = now_ms();
    bool closed = wait_count(r, &r->closed, 1, 2000);
    int64_t took = now_ms() - t0;
    peer_cmd(&P, "reject off", NULL, 0);
    CHECK_MSG(closed, "not closed within 2 s of the refusal (send_failed %d, reconnectings %d)",
              get(r, &r->send_failed), get(r, &r->reconnectings));
    pthread_mutex_lock(&r->mu);
    int failed = r->send_failed, reconnectings = r->reconnectings;
    uint64_t failed_ids = r->failed_ids, failed_seen = r->failed_seen, error_seen = r->error_seen;
    size_t undelivered = r->undelivered;
    char msg[sizeof r->last_error_msg];
    snprintf(msg, sizeof msg, "%s", r->last_error_msg);
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(failed == N && failed_ids == want_ids, "%d of %d failed (ids %#llx, want %#llx)",
              failed, N, (unsigned long long)failed_ids, (unsigned long long)want_ids);
    CHECK_MSG(failed_seen == (1ull << TETHER_ERR_CONNECTION_FAILED), "statuses %#llx",
              (unsigned long long)failed_seen);
    CHECK_MSG(undelivered == N, "undelivered %zu", undelivered);
    CHECK(error_seen & (1ull << TETHER_ERR_CONNECT_FAILED));
    CHECK_MSG(strstr(msg, "403") != NULL, "message: %s", msg);
    CHECK_MSG(reconnectings == 0, "%d reconnect attempts after a final refusal", reconnectings);
    for (uint64_t id = 1; id < 64; id++) {
        if (!(want_ids & (1ull << id))) continue;
        tether_delivery d = TETHER_DELIVERY_UNKNOWN;
        CHECK_STATUS(tether_client_delivery_status(r->client, id, &d), TETHER_OK);
        CHECK_MSG(d == TETHER_DELIVERY_FAILED, "message %llu: delivery %d", (unsigned long long)id,
                  (int)d);
    }
    CHECK(tether_client_state(r->client) == TETHER_STATE_CLOSED);
    CHECK_STATUS(tether_client_send_text(r->client, "late", 4, NULL), TETHER_ERR_CLOSED);
    printf("# %d queued messages failed %lld ms after the refusal\n", N, (long long)took);
    free_and_check(r);
    rec_destroy(r);
}

/* A name that resolves (tether_config_add_resolve, no DNS) to a black-holed loopback address
 * first and a live one second: the client connects through the live one well within the
 * connect timeout, having waited for the black hole only the Happy Eyeballs delay; after a
 * drop it starts with the address that worked. */
TEST(resolve_falls_back_from_a_black_hole) {
    reset_peer();
    black_hole hole;
    CHECK(black_hole_open(&hole) == 0);
    char url[96], hole_addr[32];
    snprintf(url, sizeof url, "ws://tether-test.invalid:%d/", P.port);
    snprintf(hole_addr, sizeof hole_addr, "127.0.0.1:%d", hole.port);
    const int64_t connect_timeout = scaled_ms(10000), delay = scaled_ms(1000);
    rec *r = rec_new(false);
    tether_config *cfg = test_config(url, false);
    bool ok = r && cfg &&
              tether_config_set_connect_timeout_ms(cfg, (uint64_t)connect_timeout) == TETHER_OK &&
              tether_config_set_happy_eyeballs_delay_ms(cfg, (uint64_t)delay) == TETHER_OK &&
              tether_config_add_resolve(cfg, "tether-test.invalid", hole_addr) == TETHER_OK &&
              /* No port: the URL's (the peer's). */
              tether_config_add_resolve(cfg, "TETHER-test.invalid", "127.0.0.1") == TETHER_OK;
    int64_t t0 = now_ms();
    ok = ok && start(r, cfg) == TETHER_OK;
    tether_config_free(cfg);
    if (!ok) black_hole_close(&hole);
    CHECK(ok);
    /* Well within the connect timeout: trying the addresses one after the other would spend
     * all of it in the black hole. (wait_count scales its timeout itself.) */
    bool ready = wait_count(r, &r->readies, 1, 5000);
    int64_t took = now_ms() - t0;
    CHECK_MSG(ready, "not ready %lld ms after the start (connect timeout %lld ms)",
              (long long)took, (long long)connect_timeout);
    CHECK_MSG(get(r, &r->closes) == 0 && get(r, &r->errors) == 0, "the first attempt failed: %s",
              r->last_error_msg);
    /* The black hole (first in the list) was tried first, for one attempt delay. */
    CHECK_MSG(took >= delay, "ready after %lld ms, before the %lld ms delay", (long long)took,
              (long long)delay);

    /* After a drop, the address that worked goes first: no delay spent on the black hole. */
    CHECK(peer_cmd(&P, "drop", NULL, 0) == 0);
    CHECK(wait_count(r, &r->closes, 1, 5000));
    int64_t t1 = now_ms();
    ready = wait_count(r, &r->readies, 2, 5000);
    int64_t again = now_ms() - t1;
    CHECK_MSG(ready, "no second ready");
    CHECK_MSG(again < delay, "the reconnect waited %lld ms: it started with the black hole again",
              (long long)again);
    CHECK_MSG(get(r, &r->closes) == 1, "%d disconnects", get(r, &r->closes));
    CHECK_STATUS(tether_client_send_text(r->client, "via the live address", 20, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 1, 5000)); /* the peer's echo */
    CHECK(strcmp(r->texts[0], "via the live address") == 0);
    printf("# ready after %lld ms (delay %lld ms), again after %lld ms\n", (long long)took,
           (long long)delay, (long long)again);
    free_and_check(r);
    rec_destroy(r);
    black_hole_close(&hole);
}

TEST(heartbeat_detects_a_stalled_server) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_heartbeat(cfg, 100, (uint64_t)scaled_ms(300)), TETHER_OK);
    CHECK_STATUS(tether_config_set_connect_timeout_ms(cfg, (uint64_t)scaled_ms(500)), TETHER_OK);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    int readies = get(r, &r->readies);
    CHECK(peer_cmd(&P, "stall on", NULL, 0) == 0);
    bool detected = wait_count(r, &r->closes, 1, 10000);
    peer_cmd(&P, "stall off", NULL, 0);
    CHECK(detected);
    CHECK_MSG(r->error_seen & (1ull << TETHER_ERR_HEARTBEAT_TIMEOUT), "errors %llx: %s",
              (unsigned long long)r->error_seen, r->last_error_msg);
    CHECK(wait_count(r, &r->readies, readies + 1, 15000));
    free_and_check(r);
    rec_destroy(r);
}

TEST(tls_with_a_custom_ca) {
    char ca_path[] = "/tmp/tether-c-test-ca-XXXXXX";
    int fd = mkstemp(ca_path);
    CHECK(fd >= 0);
    close(fd);
    const char *const args[] = {"--tls-self-signed", ca_path, NULL};
    peer T;
    int started = peer_start_args(&T, args);
    FILE *f = fopen(ca_path, "rb");
    char pem[8192];
    size_t pem_len = f ? fread(pem, 1, sizeof pem, f) : 0;
    if (f) fclose(f);
    CHECK(started == 0);
    CHECK(pem_len > 100);
    char url[80];
    snprintf(url, sizeof url, "wss://localhost:%d/", T.port);

    for (int variant = 0; variant < 4; variant++) {
        rec *r = rec_new(false);
        CHECK(r != NULL);
        tether_config *cfg = test_config(url, false);
        CHECK(cfg != NULL);
        if (variant == 0) CHECK_STATUS(tether_config_set_tls_ca_file(cfg, ca_path), TETHER_OK);
        if (variant == 1) {
            CHECK_STATUS(tether_config_set_tls_ca_pem(cfg, (const uint8_t *)pem, pem_len), TETHER_OK);
        }
        if (variant == 2) {
            /* The bundled roots do not trust the test CA: a TLS failure, final. */
            CHECK_STATUS(tether_config_set_tls_roots(cfg, TETHER_TLS_ROOTS_WEBPKI), TETHER_OK);
        }
        if (variant == 3) {
            /* A custom CA wins over the named root set, whatever the order of the calls. */
            CHECK_STATUS(tether_config_set_tls_ca_pem(cfg, (const uint8_t *)pem, pem_len), TETHER_OK);
            CHECK_STATUS(tether_config_set_tls_roots(cfg, TETHER_TLS_ROOTS_WEBPKI), TETHER_OK);
        }
        CHECK_STATUS(start(r, cfg), TETHER_OK);
        tether_config_free(cfg);
        if (variant != 2) {
            CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "variant %d: %s", variant,
                      r->last_error_msg);
            CHECK_STATUS(tether_client_send_text(r->client, "secure", 6, NULL), TETHER_OK);
            CHECK(wait_count(r, &r->messages, 1, 10000));
            CHECK(strcmp(r->texts[0], "secure") == 0);
        } else {
            CHECK(wait_count(r, &r->closed, 1, 10000));
            CHECK(r->error_seen & (1ull << TETHER_ERR_CONNECT_FAILED));
            CHECK_MSG(strstr(r->last_error_msg, "TLS") != NULL, "message: %s", r->last_error_msg);
            CHECK(r->readies == 0);
        }
        free_and_check(r);
        rec_destroy(r);
    }
    /* A PEM that is not one is refused when the config is built. */
    tether_config *bad = test_config(url, false);
    CHECK(bad != NULL);
    CHECK_STATUS(tether_config_set_tls_ca_pem(bad, (const uint8_t *)"not a pem", 9), TETHER_OK);
    CHECK_STATUS(tether_config_validate(bad), TETHER_ERR_INVALID_CONFIG);
    tether_config_free(bad);
    peer_stop(&T);
    unlink(ca_path);
}
