/*
 * The API contract without a connection (version, NULL and invalid arguments, handles, last-error buffers, the runtime, logging).
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

/* Tests without a connection.                                                                 */

TEST_FIRST(runtime_threads_before_first_client) {
    CHECK_STATUS(tether_runtime_set_worker_threads(0), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_runtime_set_worker_threads(65), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_runtime_set_worker_threads(2), TETHER_OK);
}

TEST(version_and_strings) {
    CHECK(strcmp(tether_version(), TETHER_VERSION_STRING) == 0);
    CHECK(TETHER_VERSION_NUMBER ==
          TETHER_VERSION_MAJOR * 10000 + TETHER_VERSION_MINOR * 100 + TETHER_VERSION_PATCH);
    CHECK(strcmp(tether_status_str(TETHER_OK), "ok") == 0);
    for (int s = 0; s <= TETHER_ERR_KEPT; s++) {
        const char *text = tether_status_str(s);
        CHECK(text != NULL && *text != '\0');
        CHECK_MSG(strcmp(text, "unknown status") != 0, "status %d has no description", s);
    }
    CHECK(strcmp(tether_status_str(-1), "unknown status") == 0);
    CHECK(strcmp(tether_status_str(TETHER_ERR_KEPT + 1), "unknown status") == 0);
    CHECK(strcmp(tether_status_str(1 << 30), "unknown status") == 0);
    CHECK(strcmp(tether_state_str(TETHER_STATE_READY), "ready") == 0);
    CHECK(strcmp(tether_state_str(TETHER_STATE_RECONNECTING), "reconnecting") == 0);
    CHECK(strcmp(tether_state_str(42), "unknown") == 0);
}

TEST(null_parameters_everywhere) {
    tether_callbacks cb = TETHER_CALLBACKS_INIT;
    tether_client *client = NULL;
    uint64_t id = 0;
    size_t n = 0;
    tether_stats stats = TETHER_STATS_INIT;
    char buf[64];
    tether_delivery d;

    /* NULL handles. */
    CHECK_STATUS(tether_client_new(NULL, &cb, NULL, NULL, &client), TETHER_ERR_NULL_PARAMETER);
    CHECK(client == NULL);
    CHECK_STATUS(tether_client_send_text(NULL, "x", 1, &id), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_send_binary(NULL, (const uint8_t *)"x", 1, &id),
                 TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_close(NULL, 1000, "x"), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_stats(NULL, &stats), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_last_error(NULL, buf, sizeof buf, &n), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_poll(NULL, 0, &n), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_poll_timeout(NULL, 0, 10, &n), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_wait_closed(NULL, 10), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_wait_acked(NULL, 1, 10), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_delivery_status(NULL, 1, &d), TETHER_ERR_NULL_PARAMETER);
    CHECK(tether_client_state(NULL) == TETHER_STATE_CLOSED);
    tether_client_free(NULL);
    tether_config_free(NULL);
    CHECK(id == 0 && n == 0); /* outputs untouched on failure */

    CHECK_STATUS(tether_config_set_url(NULL, "ws://x/"), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_backoff(NULL, 1, 2, 2.0), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_dispatch(NULL, TETHER_DISPATCH_POLL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_validate(NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_last_error(NULL, buf, sizeof buf, &n), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_protocol(NULL, TETHER_PROTOCOL_RAW), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_happy_eyeballs_delay_ms(NULL, 100), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_add_resolve(NULL, "x", "127.0.0.1"), TETHER_ERR_NULL_PARAMETER);

    /* NULL arguments with a live config. */
    tether_config *cfg = tether_config_new();
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_url(cfg, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_add_header(cfg, NULL, "v"), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_add_header(cfg, "X-A", NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_add_subprotocol(cfg, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_tls_ca_file(cfg, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_tls_ca_pem(cfg, NULL, 10), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_auth_token(cfg, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_session_id(cfg, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_set_signing_key(cfg, NULL, 4), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_add_resolve(cfg, NULL, "127.0.0.1"), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_config_add_resolve(cfg, "x", NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK(strstr(config_error(cfg, buf, sizeof buf), "NULL") != NULL);
    CHECK_STATUS(tether_config_set_url(cfg, P.url), TETHER_OK);
    CHECK_STATUS(tether_client_new(cfg, NULL, NULL, NULL, &client), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_new(cfg, &cb, NULL, NULL, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK(client == NULL);

    /* NULL arguments with a live client (all callbacks NULL is fine). */
    CHECK_STATUS(tether_client_new(cfg, &cb, NULL, NULL, &client), TETHER_OK);
    tether_config_free(cfg); /* the client does not need it any more */
    CHECK(client != NULL);
    CHECK_STATUS(tether_client_send_text(client, NULL, 3, &id), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_send_binary(client, NULL, 3, &id), TETHER_ERR_NULL_PARAMETER);
    CHECK(strstr(last_error(client, buf, sizeof buf), "NULL") != NULL);
    CHECK_STATUS(tether_client_stats(client, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_delivery_status(client, 1, NULL), TETHER_ERR_NULL_PARAMETER);
    CHECK_STATUS(tether_client_last_error(client, NULL, 5, NULL), TETHER_ERR_NULL_PARAMETER);
    /* Zero-length buffers may be NULL; NULL outputs are optional where documented. */
    CHECK_STATUS(tether_client_send_text(client, NULL, 0, NULL), TETHER_OK);
    CHECK_STATUS(tether_client_send_binary(client, NULL, 0, &id), TETHER_OK);
    CHECK(id == 2);
    CHECK_STATUS(tether_client_close(client, 1000, NULL), TETHER_OK);
    tether_client_free(client);
}

TEST(bad_urls) {
    static const struct {
        const char *url;
        const char *says;
    } cases[] = {
        {"http://example.com/", "did you mean ws://"},
        {"https://example.com/", "did you mean wss://"},
        {"ftp://example.com/", "unsupported scheme"},
        {"", "empty"},
        {"   ", "empty"},
        {"example.com/chat", "no scheme"},
        {"ws://", "host"},
        {"ws://host:99999/", "port"},
        {"ws://host:0/", "port 0"},
        {"ws://user:secret@host/", "credentials"},
        {"ws://host/#fragment", "fragment"},
        {"\xff\xfe", "UTF-8"},
    };
    tether_config *cfg = tether_config_new();
    CHECK(cfg != NULL);
    char buf[512];
    /* No URL at all. */
    CHECK_STATUS(tether_config_validate(cfg), TETHER_ERR_INVALID_URL);
    CHECK(strstr(config_error(cfg, buf, sizeof buf), "no URL") != NULL);
    CHECK_STATUS(tether_config_set_url(cfg, "ws://127.0.0.1:9/ok"), TETHER_OK);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_STATUS(tether_config_set_url(cfg, cases[i].url), TETHER_ERR_INVALID_URL);
        config_error(cfg, buf, sizeof buf);
        CHECK_MSG(strstr(buf, cases[i].says) != NULL, "URL %zu: message '%s' lacks '%s'", i, buf,
                  cases[i].says);
    }
    /* The last good URL is kept. */
    CHECK_STATUS(tether_config_validate(cfg), TETHER_OK);
    CHECK_STATUS(tether_config_set_url(cfg, "wss://example.com:8443/path?q=1"), TETHER_OK);
    CHECK_STATUS(tether_config_validate(cfg), TETHER_OK);
    tether_config_free(cfg);
}

static int finalized_by_failed_new;
static void count_finalize(void *ud) {
    (void)ud;
    finalized_by_failed_new++;
}

TEST(invalid_config_values) {
    char buf[512];
    tether_config *cfg = tether_config_new();
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_url(cfg, P.url), TETHER_OK);

    /* Enum inputs are checked at once. */
    CHECK_STATUS(tether_config_set_dispatch(cfg, 7), TETHER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(config_error(cfg, buf, sizeof buf), "tether_dispatch") != NULL);
    CHECK_STATUS(tether_config_set_overflow_policy(cfg, -1, 0), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_config_set_tls_roots(cfg, 9), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_config_set_protocol(cfg, 2), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_config_validate(cfg), TETHER_OK);

    /* Values are checked by the core when the config is built; the message names them. */
    static const struct {
        int which;
        const char *says;
    } cases[] = {
        {0, "backoff_multiplier"}, {1, "outbox_max_messages"}, {2, "connect_timeout"},
        {3, "CA file"},           {4, "auth_token"},          {5, "header"},
        {6, "subprotocol"},       {7, "max_outbound_message_size"},
        {8, "happy_eyeballs_delay"}, {9, "happy_eyeballs_delay"},
        {10, "not the URL's host"}, {11, "not an IP address"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tether_config *bad = tether_config_new();
        CHECK(bad != NULL);
        CHECK_STATUS(tether_config_set_url(bad, P.url), TETHER_OK);
        switch (cases[i].which) {
        case 0: tether_config_set_backoff(bad, 100, 1000, 0.5); break;
        case 1: tether_config_set_outbox_limits(bad, 0, 1024); break;
        case 2: tether_config_set_connect_timeout_ms(bad, 0); break;
        case 3: tether_config_set_tls_ca_file(bad, "/nonexistent/ca.pem"); break;
        case 4: tether_config_set_auth_token(bad, "secret"); break; /* raw mode */
        case 5: tether_config_add_header(bad, "Bad Header", "x"); break;
        case 6: tether_config_add_subprotocol(bad, "has space"); break;
        case 7:
            tether_config_set_outbox_limits(bad, 10, 1000);
            tether_config_set_max_outbound_message_size(bad, 2000);
            break;
        case 8: tether_config_set_happy_eyeballs_delay_ms(bad, 5); break; /* below 10 ms */
        case 9:
            tether_config_set_connect_timeout_ms(bad, 1000);
            tether_config_set_happy_eyeballs_delay_ms(bad, 1000);
            break;
        case 10: tether_config_add_resolve(bad, "other.invalid", "127.0.0.1"); break;
        case 11: tether_config_add_resolve(bad, "127.0.0.1", "localhost"); break;
        }
        CHECK_STATUS(tether_config_validate(bad), TETHER_ERR_INVALID_CONFIG);
        CHECK_MSG(strstr(config_error(bad, buf, sizeof buf), cases[i].says) != NULL,
                  "case %zu: '%s' lacks '%s'", i, buf, cases[i].says);
        /* tether_client_new refuses it the same way, and keeps user_data's ownership. */
        tether_callbacks cb = TETHER_CALLBACKS_INIT;
        tether_client *client = NULL;
        CHECK_STATUS(tether_client_new(bad, &cb, NULL, count_finalize, &client),
                     TETHER_ERR_INVALID_CONFIG);
        CHECK(client == NULL);
        CHECK(finalized_by_failed_new == 0);
        tether_config_free(bad);
    }

    /* Envelope options are fine in envelope mode. */
    CHECK_STATUS(tether_config_set_protocol(cfg, TETHER_PROTOCOL_ENVELOPE), TETHER_OK);
    CHECK_STATUS(tether_config_set_auth_token(cfg, "token"), TETHER_OK);
    CHECK_STATUS(tether_config_set_signing_key(cfg, (const uint8_t *)"key", 3), TETHER_OK);
    CHECK_STATUS(tether_config_set_compression_threshold(cfg, 512), TETHER_OK);
    CHECK_STATUS(tether_config_set_ack_timeout(cfg, 2000, 3), TETHER_OK);
    CHECK_STATUS(tether_config_set_handshake_timeout_ms(cfg, 2000), TETHER_OK);
    CHECK_STATUS(tether_config_set_session_id(cfg, "session-1"), TETHER_OK);
    CHECK_STATUS(tether_config_set_app_ping(cfg, true), TETHER_OK);
    CHECK_STATUS(tether_config_validate(cfg), TETHER_OK);
    CHECK_STATUS(tether_config_set_session_id(cfg, "bad id with spaces"), TETHER_OK);
    CHECK_STATUS(tether_config_validate(cfg), TETHER_ERR_INVALID_CONFIG);
    CHECK(strstr(config_error(cfg, buf, sizeof buf), "session_id") != NULL);
    tether_config_free(cfg);

    /* Every other setter accepts a sane value. */
    tether_config *all = test_config(P.url, false);
    CHECK(all != NULL);
    CHECK_STATUS(tether_config_add_header(all, "Authorization", "Bearer x"), TETHER_OK);
    CHECK_STATUS(tether_config_add_subprotocol(all, "chat.v1"), TETHER_OK);
    CHECK_STATUS(tether_config_set_tls_roots(all, TETHER_TLS_ROOTS_WEBPKI), TETHER_OK);
    CHECK_STATUS(tether_config_set_danger_accept_invalid_certs(all, false), TETHER_OK);
    CHECK_STATUS(tether_config_set_reconnect_enabled(all, true), TETHER_OK);
    CHECK_STATUS(tether_config_set_max_reconnect_attempts(all, 0), TETHER_OK);
    CHECK_STATUS(tether_config_set_max_retry_duration_ms(all, 0), TETHER_OK);
    CHECK_STATUS(tether_config_set_outbox_limits(all, 100, 1 << 20), TETHER_OK);
    CHECK_STATUS(tether_config_set_overflow_policy(all, TETHER_OVERFLOW_WAIT, 100), TETHER_OK);
    CHECK_STATUS(tether_config_set_queue_while_disconnected(all, true), TETHER_OK);
    CHECK_STATUS(tether_config_set_max_outbound_message_size(all, 1 << 16), TETHER_OK);
    CHECK_STATUS(tether_config_set_max_inbound_size(all, 1 << 20, 1 << 20), TETHER_OK);
    CHECK_STATUS(tether_config_set_event_queue_capacity(all, 64), TETHER_OK);
    CHECK_STATUS(tether_config_set_read_buffer_size(all, 4096), TETHER_OK);
    CHECK_STATUS(tether_config_set_write_batch_bytes(all, 65536), TETHER_OK);
    CHECK_STATUS(tether_config_set_protocol(all, TETHER_PROTOCOL_RAW), TETHER_OK);
    CHECK_STATUS(tether_config_set_happy_eyeballs_delay_ms(all, 100), TETHER_OK);
    CHECK_STATUS(tether_config_add_resolve(all, "127.0.0.1", "127.0.0.1"), TETHER_OK);
    CHECK_STATUS(tether_config_add_resolve(all, "127.0.0.1", "[::1]:9"), TETHER_OK);
    CHECK_STATUS(tether_config_validate(all), TETHER_OK);
    tether_config_free(all);
}

TEST(last_error_buffer_contract) {
    tether_config *cfg = tether_config_new();
    CHECK(cfg != NULL);
    size_t needed = 0;
    char small[8];
    /* Nothing failed yet: empty. */
    CHECK_STATUS(tether_config_last_error(cfg, small, sizeof small, &needed), TETHER_OK);
    CHECK(needed == 1 && small[0] == '\0');
    CHECK_STATUS(tether_config_set_url(cfg, "http://example.com/"), TETHER_ERR_INVALID_URL);
    /* Size query. */
    CHECK_STATUS(tether_config_last_error(cfg, NULL, 0, &needed), TETHER_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 20);
    /* Truncated but terminated. */
    memset(small, 'x', sizeof small);
    CHECK_STATUS(tether_config_last_error(cfg, small, sizeof small, NULL),
                 TETHER_ERR_BUFFER_TOO_SMALL);
    CHECK(memchr(small, '\0', sizeof small) != NULL);
    CHECK(strlen(small) == sizeof small - 1);
    /* Exact size. */
    char *full = malloc(needed);
    CHECK(full != NULL);
    size_t again = 0;
    int st = tether_config_last_error(cfg, full, needed, &again);
    bool ok = st == TETHER_OK && again == needed && strlen(full) + 1 == needed &&
              strncmp(full, "invalid URL", 11) == 0;
    free(full);
    CHECK(ok);
    CHECK_STATUS(tether_config_last_error(cfg, NULL, 4, NULL), TETHER_ERR_NULL_PARAMETER);
    tether_config_free(cfg);
}

TEST(handles_are_checked) {
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    tether_callbacks cb = TETHER_CALLBACKS_INIT;
    tether_client *client = NULL;
    CHECK_STATUS(tether_client_new(cfg, &cb, NULL, NULL, &client), TETHER_OK);
    /* A config is not a client, and the reverse. */
    CHECK_STATUS(tether_client_send_text((tether_client *)cfg, "x", 1, NULL),
                 TETHER_ERR_INVALID_HANDLE);
    CHECK_STATUS(tether_config_validate((tether_config *)client), TETHER_ERR_INVALID_HANDLE);
    /* Forged handles. */
    CHECK_STATUS(tether_client_send_text((tether_client *)(uintptr_t)0x1234, "x", 1, NULL),
                 TETHER_ERR_INVALID_HANDLE);
    CHECK_STATUS(tether_client_close((tether_client *)(uintptr_t)-1, 1000, NULL),
                 TETHER_ERR_INVALID_HANDLE);
    /* Use after free: detected, never a crash (the handle is a token, not an address). */
    tether_client_free(client);
    uint64_t id = 0;
    CHECK_STATUS(tether_client_send_text(client, "x", 1, &id), TETHER_ERR_INVALID_HANDLE);
    CHECK_STATUS(tether_client_close(client, 1000, NULL), TETHER_ERR_INVALID_HANDLE);
    CHECK_STATUS(tether_client_poll(client, 1, NULL), TETHER_ERR_INVALID_HANDLE);
    CHECK(tether_client_state(client) == TETHER_STATE_CLOSED);
    tether_client_free(client); /* double free: ignored */
    tether_config_free(cfg);
    CHECK_STATUS(tether_config_set_url(cfg, P.url), TETHER_ERR_INVALID_HANDLE);
    tether_config_free(cfg);
    CHECK(id == 0);
}

/* The log callback is process-wide. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_records, log_connected, log_bad_target;

static void on_log(void *ud, tether_log_level level, const char *target, const char *message) {
    (void)ud;
    pthread_mutex_lock(&log_mu);
    log_records++;
    if (strncmp(target, "tether", 6) != 0 || level < TETHER_LOG_ERROR || level > TETHER_LOG_INFO)
        log_bad_target++;
    if (strstr(message, "connected")) log_connected++;
    pthread_mutex_unlock(&log_mu);
}

TEST(log_callback) {
    reset_peer();
    CHECK_STATUS(tether_set_log_callback(on_log, NULL, 9), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_set_log_callback(on_log, NULL, TETHER_LOG_INFO), TETHER_OK);
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(start(r, cfg), TETHER_OK);
    tether_config_free(cfg);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    free_and_check(r);
    rec_destroy(r);
    CHECK_STATUS(tether_set_log_callback(NULL, NULL, TETHER_LOG_OFF), TETHER_OK);
    pthread_mutex_lock(&log_mu);
    int records = log_records, connected = log_connected, bad = log_bad_target;
    pthread_mutex_unlock(&log_mu);
    CHECK_MSG(connected >= 1 && bad == 0, "records %d connected %d bad %d", records, connected, bad);
}

TEST_LAST(runtime_threads_after_first_client) {
    CHECK_STATUS(tether_runtime_set_worker_threads(2), TETHER_ERR_INVALID_STATE);
}
