/*
 * Tests of the Tether C API against the real test peer (tests/peers: tether-peer).
 *
 * Every wait is bounded (scaled by TETHER_TIMEOUT_SCALE); waits are on events (condition
 * variables fed by the callbacks, or tether_client_poll_timeout in poll mode), never on
 * sleeps. Run by tests/c/run.sh under ASan+UBSan (static and shared linking) and valgrind.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tether.h"

static peer P;

/* ------------------------------------------------------------------------------------------ */
/* A recorder: the user_data of the test clients.                                              */

#define MAX_TEXTS 128

typedef struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tether_client *client; /* written by tether_client_new (client_out = &r->client) */
    bool poll_mode;

    int states, opens, readies, messages, text_messages, binary_messages, closes,
        closes_will_reconnect, reconnectings, written_calls, acked, send_failed, errors, closed,
        finalized;
    tether_state last_state;
    uint64_t written_up_to;
    char texts[MAX_TEXTS][64]; /* the first MAX_TEXTS messages (truncated) */
    size_t last_len;
    int last_kind;
    uint8_t last_data[64];
    bool last_data_nonnull;
    uint64_t error_seen;  /* bit per tether_status seen by on_error */
    uint64_t failed_seen; /* bit per tether_status seen by on_send_failed */
    uint64_t failed_ids;  /* bit per message id (1..63) seen by on_send_failed */
    char last_error_msg[512];
    uint64_t last_failed_id;
    char last_failed_reason[256];
    uint16_t last_close_code;
    char last_close_reason[256];
    uint16_t closed_code;
    char closed_reason[256];
    size_t undelivered;
    uint32_t last_attempt;
    int session_resets;
    tether_session_reset last_reset;
    int readies_at_reset;   /* readies counted when the last session reset came */
    int after_messages;     /* messages "after-<i>" (durable-session tests), and whether they */
    int after_out_of_order; /* came as after-0, after-1, ... */

    /* invariants */
    int in_cb, overlap, after_closed, after_free, after_inner_free, finalize_in_cb;
    bool freed; /* set by the test once tether_client_free returned */
    pthread_t cb_thread;
    bool cb_thread_set;
    int thread_changes;

    /* actions taken inside callbacks */
    bool free_on_message;
    bool free_done_in_callback;
    bool poll_on_ready;
    int poll_on_ready_status;
    int reply_budget; /* on_message sends "pong" back while > 0 */
    bool close_on_message;
    int inner_status;
} rec;

/* A condition variable that waits on CLOCK_MONOTONIC (see cond_wait_ms). */
static void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* Wait on `cv` (with `mu` held) for at most `left_ms`. */
static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t left_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left_ms / 1000;
    ts.tv_nsec += (left_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

static void rec_init(rec *r, bool poll_mode) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    cond_init_monotonic(&r->cv);
    r->poll_mode = poll_mode;
    r->poll_on_ready_status = -1;
    r->inner_status = -1;
}

/* Recorders live on the heap: if a check fails half-way, the test returns while the client
 * still runs, and its callbacks keep using the recorder (leaked then, never freed). */
static rec *rec_new(bool poll_mode) {
    rec *r = malloc(sizeof *r);
    if (r) rec_init(r, poll_mode);
    return r;
}

static void rec_destroy(rec *r) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void cb_begin(rec *r) {
    pthread_mutex_lock(&r->mu);
    if (++r->in_cb > 1) r->overlap++;
    if (r->closed) r->after_closed++;
    if (r->freed) r->after_free++;
    if (r->free_done_in_callback) r->after_inner_free++;
    pthread_t self = pthread_self();
    if (!r->cb_thread_set) {
        r->cb_thread = self;
        r->cb_thread_set = true;
    } else if (!pthread_equal(r->cb_thread, self)) {
        r->thread_changes++;
    }
    pthread_mutex_unlock(&r->mu);
}

static void cb_end(rec *r) {
    pthread_mutex_lock(&r->mu);
    r->in_cb--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_state(void *ud, tether_state from, tether_state to) {
    rec *r = ud;
    (void)from;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->states++;
    r->last_state = to;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_open(void *ud) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->opens++;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_ready(void *ud) {
    rec *r = ud;
    cb_begin(r);
    if (r->poll_on_ready) {
        size_t ran = 0;
        int st = tether_client_poll(r->client, 0, &ran);
        pthread_mutex_lock(&r->mu);
        r->poll_on_ready_status = st;
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_lock(&r->mu);
    r->readies++;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_message(void *ud, const uint8_t *data, size_t len, tether_message_type kind) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    if (r->messages < MAX_TEXTS) {
        size_t n = len < 63 ? len : 63;
        memcpy(r->texts[r->messages], data, n);
        r->texts[r->messages][n] = '\0';
    }
    r->last_len = len;
    r->last_kind = (int)kind;
    r->last_data_nonnull = data != NULL;
    memcpy(r->last_data, data, len < sizeof r->last_data ? len : sizeof r->last_data);
    if (kind == TETHER_MESSAGE_TEXT) r->text_messages++;
    if (kind == TETHER_MESSAGE_TEXT && len > 6 && len < 32 && memcmp(data, "after-", 6) == 0) {
        char digits[32];
        memcpy(digits, data + 6, len - 6);
        digits[len - 6] = '\0';
        if (strtol(digits, NULL, 10) != r->after_messages) r->after_out_of_order++;
        r->after_messages++;
    }
    if (kind == TETHER_MESSAGE_BINARY) r->binary_messages++;
    bool reply = r->reply_budget > 0;
    if (reply) r->reply_budget--;
    bool close_now = r->close_on_message;
    bool free_now = r->free_on_message;
    pthread_mutex_unlock(&r->mu);

    /* Calls from inside a callback: they only enqueue, so they must not deadlock. */
    int st = -1;
    if (reply) st = (int)tether_client_send_text(r->client, "pong", 4, NULL);
    if (close_now) st = (int)tether_client_close(r->client, 4000, "done");
    if (free_now) {
        tether_client_free(r->client);
        st = TETHER_OK;
    }
    pthread_mutex_lock(&r->mu);
    if (st != -1) r->inner_status = st;
    if (free_now) r->free_done_in_callback = true;
    r->messages++; /* counted last: a waiter that sees it also sees the actions' results */
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_close(void *ud, uint16_t code, const char *reason, bool will_reconnect) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->closes++;
    if (will_reconnect) r->closes_will_reconnect++;
    r->last_close_code = code;
    snprintf(r->last_close_reason, sizeof r->last_close_reason, "%s", reason);
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_reconnecting(void *ud, uint32_t attempt, uint64_t delay_ms) {
    rec *r = ud;
    (void)delay_ms;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->reconnectings++;
    r->last_attempt = attempt;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_written(void *ud, uint64_t up_to) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->written_calls++;
    if (up_to > r->written_up_to) r->written_up_to = up_to;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_session_reset(void *ud, const tether_session_reset *reset) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->session_resets++;
    r->last_reset = *reset;
    r->readies_at_reset = r->readies;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_acked(void *ud, uint64_t id) {
    rec *r = ud;
    (void)id;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->acked++;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_send_failed(void *ud, uint64_t id, tether_status status, const char *reason) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->send_failed++;
    r->failed_seen |= 1ull << (unsigned)status;
    if (id < 64) r->failed_ids |= 1ull << id;
    r->last_failed_id = id;
    snprintf(r->last_failed_reason, sizeof r->last_failed_reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_error(void *ud, tether_status status, const char *message) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->errors++;
    r->error_seen |= 1ull << (unsigned)status;
    snprintf(r->last_error_msg, sizeof r->last_error_msg, "%s", message);
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void on_closed(void *ud, uint16_t code, const char *reason, size_t undelivered) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->closed_code = code;
    snprintf(r->closed_reason, sizeof r->closed_reason, "%s", reason);
    r->undelivered = undelivered;
    r->closed++; /* after the check in cb_begin: this callback itself is not "after" */
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

static void rec_finalize(void *ud) {
    rec *r = ud;
    pthread_mutex_lock(&r->mu);
    r->finalized++;
    if (r->in_cb) r->finalize_in_cb++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static tether_callbacks all_callbacks(void) {
    tether_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_state = on_state;
    cb.on_open = on_open;
    cb.on_ready = on_ready;
    cb.on_message = on_message;
    cb.on_close = on_close;
    cb.on_reconnecting = on_reconnecting;
    cb.on_written = on_written;
    cb.on_acked = on_acked;
    cb.on_session_reset = on_session_reset;
    cb.on_send_failed = on_send_failed;
    cb.on_error = on_error;
    cb.on_closed = on_closed;
    return cb;
}

/* Wait until *field >= n (read under the recorder's lock). Poll mode drives the callbacks
 * with tether_client_poll_timeout; callback mode waits on the condition variable. */
static bool wait_count(rec *r, const int *field, int n, int64_t timeout_ms) {
    int64_t deadline = now_ms() + scaled_ms(timeout_ms);
    if (r->poll_mode) {
        for (;;) {
            pthread_mutex_lock(&r->mu);
            bool done = *field >= n;
            pthread_mutex_unlock(&r->mu);
            if (done) return true;
            int64_t left = deadline - now_ms();
            if (left <= 0) return false;
            size_t ran = 0;
            int st = tether_client_poll_timeout(r->client, 0, (uint64_t)(left < 100 ? left : 100),
                                                &ran);
            if (st != TETHER_OK) {
                /* Freed from inside a callback: the client is gone; look once more. */
                pthread_mutex_lock(&r->mu);
                done = *field >= n;
                pthread_mutex_unlock(&r->mu);
                return done;
            }
        }
    }
    pthread_mutex_lock(&r->mu);
    while (*field < n) {
        int64_t left = deadline - now_ms();
        if (left <= 0) break;
        cond_wait_ms(&r->cv, &r->mu, left);
    }
    bool done = *field >= n;
    pthread_mutex_unlock(&r->mu);
    return done;
}

static int get(rec *r, const int *field) {
    pthread_mutex_lock(&r->mu);
    int v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static uint64_t get64(rec *r, const uint64_t *field) {
    pthread_mutex_lock(&r->mu);
    uint64_t v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* A config for the test peer (or `url`): fast backoff, no heartbeat unless asked. */
static tether_config *test_config(const char *url, bool poll_mode) {
    tether_config *cfg = tether_config_new();
    if (!cfg) return NULL;
    if (tether_config_set_url(cfg, url) != TETHER_OK ||
        tether_config_set_dispatch(cfg, poll_mode ? TETHER_DISPATCH_POLL : TETHER_DISPATCH_THREAD) !=
            TETHER_OK ||
        tether_config_set_heartbeat(cfg, 0, 1000) != TETHER_OK ||
        tether_config_set_backoff(cfg, 20, 200, 2.0) != TETHER_OK ||
        tether_config_set_min_uptime_ms(cfg, 100) != TETHER_OK ||
        tether_config_set_connect_timeout_ms(cfg, (uint64_t)scaled_ms(3000)) != TETHER_OK ||
        tether_config_set_close_timeout_ms(cfg, (uint64_t)scaled_ms(2000)) != TETHER_OK) {
        tether_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static int start(rec *r, tether_config *cfg) {
    tether_callbacks cb = all_callbacks();
    return (int)tether_client_new(cfg, &cb, r, rec_finalize, &r->client);
}

/* Free the client and check the shutdown contract: one finalizer run, nothing after. */
static void free_and_check(rec *r) {
    tether_client_free(r->client);
    pthread_mutex_lock(&r->mu);
    r->freed = true;
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(get(r, &r->finalized) == 1, "finalizer ran %d times", get(r, &r->finalized));
    CHECK(get(r, &r->finalize_in_cb) == 0);
    CHECK(get(r, &r->overlap) == 0);
    CHECK(get(r, &r->after_closed) == 0);
    CHECK(get(r, &r->after_free) == 0);
    CHECK(get(r, &r->thread_changes) == 0);
}

/* How many messages the peer has received so far ("count"), or -1. */
static int peer_received(void) {
    char reply[128];
    int accepted = 0, received = 0;
    if (peer_cmd(&P, "count", reply, sizeof reply) != 0 ||
        sscanf(reply, "OK %d %d", &accepted, &received) != 2)
        return -1;
    return received;
}

/* A recorder with a client started from `cfg` (NULL allowed: a failed config), which is freed
 * here; NULL on failure. */
static rec *started_with(tether_config *cfg, bool poll_mode) {
    rec *r = rec_new(poll_mode);
    bool ok = r && cfg && start(r, cfg) == TETHER_OK;
    tether_config_free(cfg);
    return ok ? r : NULL;
}

/* The same with the test config for `url`. */
static rec *started(const char *url, bool poll_mode) {
    return started_with(test_config(url, poll_mode), poll_mode);
}

static void reset_peer(void) {
    peer_cmd(&P, "echo on", NULL, 0);
    peer_cmd(&P, "stall off", NULL, 0);
    peer_cmd(&P, "reject off", NULL, 0);
}

/* Reset the peer with its echo off; returns how many messages it has received so far, or -1. */
static int quiet_peer(void) {
    reset_peer();
    int received = peer_received();
    return received >= 0 && peer_cmd(&P, "echo off", NULL, 0) == 0 ? received : -1;
}

static char *last_error(tether_client *c, char *buf, size_t len) {
    buf[0] = '\0';
    tether_client_last_error(c, buf, len, NULL);
    return buf;
}

static char *config_error(tether_config *c, char *buf, size_t len) {
    buf[0] = '\0';
    tether_config_last_error(c, buf, len, NULL);
    return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests without a connection.                                                                 */

static void test_runtime_threads_before_first_client(void) {
    CHECK_STATUS(tether_runtime_set_worker_threads(0), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_runtime_set_worker_threads(65), TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_runtime_set_worker_threads(2), TETHER_OK);
}

static void test_version_and_strings(void) {
    CHECK(strcmp(tether_version(), TETHER_VERSION_STRING) == 0);
    CHECK(TETHER_VERSION_NUMBER ==
          TETHER_VERSION_MAJOR * 10000 + TETHER_VERSION_MINOR * 100 + TETHER_VERSION_PATCH);
    CHECK(strcmp(tether_status_str(TETHER_OK), "ok") == 0);
    for (int s = 0; s <= TETHER_ERR_INBOUND_REJECTED; s++) {
        const char *text = tether_status_str(s);
        CHECK(text != NULL && *text != '\0');
        CHECK_MSG(strcmp(text, "unknown status") != 0, "status %d has no description", s);
    }
    CHECK(strcmp(tether_status_str(-1), "unknown status") == 0);
    CHECK(strcmp(tether_status_str(TETHER_ERR_INBOUND_REJECTED + 1), "unknown status") == 0);
    CHECK(strcmp(tether_status_str(1 << 30), "unknown status") == 0);
    CHECK(strcmp(tether_state_str(TETHER_STATE_READY), "ready") == 0);
    CHECK(strcmp(tether_state_str(TETHER_STATE_RECONNECTING), "reconnecting") == 0);
    CHECK(strcmp(tether_state_str(42), "unknown") == 0);
}

static void test_null_parameters_everywhere(void) {
    tether_callbacks cb;
    memset(&cb, 0, sizeof cb);
    tether_client *client = NULL;
    uint64_t id = 0;
    size_t n = 0;
    tether_stats stats;
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

static void test_bad_urls(void) {
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

static void test_invalid_config_values(void) {
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
        tether_callbacks cb;
        memset(&cb, 0, sizeof cb);
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

static void test_last_error_buffer_contract(void) {
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

static void test_handles_are_checked(void) {
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    tether_callbacks cb;
    memset(&cb, 0, sizeof cb);
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

/* ------------------------------------------------------------------------------------------ */
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

static void test_echo_callback_mode(void) { echo_test(false); }
static void test_echo_poll_mode(void) { echo_test(true); }

static void test_zero_length_messages(void) {
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

static void test_too_large_and_invalid_payloads(void) {
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

static void test_server_forced_disconnects(void) {
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

    /* A close frame from the server (service restart): no error, close 1012, reconnect. */
    int errors_before = get(r, &r->errors);
    CHECK(peer_cmd(&P, "close 1012 service restart", NULL, 0) == 0);
    CHECK(wait_count(r, &r->readies, 3, 10000));
    pthread_mutex_lock(&r->mu);
    ok = r->errors == errors_before && r->closes == 2 && r->last_close_code == 1012 &&
         strcmp(r->last_close_reason, "service restart") == 0;
    pthread_mutex_unlock(&r->mu);
    CHECK(ok);

    /* The link works after both. */
    CHECK_STATUS(tether_client_send_text(r->client, "after", 5, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    CHECK(strcmp(r->texts[0], "after") == 0);
    tether_stats s;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.reconnects == 2);
    free_and_check(r);
    rec_destroy(r);
}

static void test_queued_while_disconnected(void) {
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
    tether_stats s;
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

static void test_not_ready_when_queueing_is_off(void) {
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

static void test_queue_full_and_undelivered(void) {
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

static void test_drop_oldest_policy(void) {
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

static void test_use_after_close(void) {
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
    tether_stats s;
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

static void test_free_from_another_thread_while_sends_run(void) {
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

static void test_free_inside_callback_thread_mode(void) { free_in_callback_test(false); }
static void test_free_inside_callback_poll_mode(void) { free_in_callback_test(true); }

static void test_poll_reentrancy_is_an_error(void) {
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

static void test_concurrent_poll_is_an_error(void) {
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

static void test_send_and_close_inside_callbacks(void) {
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

static void test_server_side_failures(void) {
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

static void test_rejected_upgrade_is_final(void) {
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

static void test_retries_exhausted(void) {
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
static void test_final_refusal_fails_queued_messages_at_once(void) {
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
static void test_resolve_falls_back_from_a_black_hole(void) {
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

static void test_heartbeat_detects_a_stalled_server(void) {
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

static void test_close_drains_the_outbox(void) {
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

static void test_many_clients(void) {
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

static void test_user_data_is_finalized(void) {
    reset_peer();
    app *a = calloc(1, sizeof *a);
    CHECK(a != NULL);
    a->buffer = calloc(1, 64);
    tether_config *cfg = test_config(P.url, true);
    CHECK(cfg != NULL);
    tether_callbacks cb;
    memset(&cb, 0, sizeof cb);
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

static void test_log_callback(void) {
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

static void test_tls_with_a_custom_ca(void) {
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

    for (int variant = 0; variant < 3; variant++) {
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
        CHECK_STATUS(start(r, cfg), TETHER_OK);
        tether_config_free(cfg);
        if (variant < 2) {
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

/* ------------------------------------------------------------------------------------------ */
/* Envelope mode, against the Rust reference server (tests/peers: tether-ref-server).          */

static tether_config *envelope_config(const char *url, const char *sid, const char *token,
                                      const char *key) {
    tether_config *cfg = test_config(url, false);
    if (!cfg) return NULL;
    if (tether_config_set_protocol(cfg, TETHER_PROTOCOL_ENVELOPE) != TETHER_OK ||
        tether_config_set_session_id(cfg, sid) != TETHER_OK ||
        (token && tether_config_set_auth_token(cfg, token) != TETHER_OK) ||
        (key && tether_config_set_signing_key(cfg, (const uint8_t *)key, strlen(key)) != TETHER_OK) ||
        tether_config_set_handshake_timeout_ms(cfg, (uint64_t)scaled_ms(5000)) != TETHER_OK) {
        tether_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static void test_envelope_acks(void) {
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
    tether_stats s;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.messages_acked == 3 && s.awaiting_ack == 0);
    /* An unknown id. */
    CHECK_STATUS(tether_client_wait_acked(r->client, 999, 10), TETHER_ERR_INVALID_ARGUMENT);
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

static void test_envelope_failures(void) {
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
static void test_envelope_refused_as_too_large(void) {
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
    tether_stats s;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK_MSG(s.reconnects >= 1 && s.reconnects <= 3, "reconnects %llu",
              (unsigned long long)s.reconnects);
    CHECK(tether_client_state(r->client) == TETHER_STATE_READY);
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

/* ------------------------------------------------------------------------------------------ */
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

static void test_send_binary_owned_echo(void) {
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
    tether_stats s;
    CHECK_STATUS(tether_client_stats(r->client, &s), TETHER_OK);
    CHECK(s.bytes_received == 5 + 65536 + 6);
    free_and_check(r);
    /* Nothing is released twice, even after free. */
    CHECK(owned_all_once(l, bufs, 3));
    rec_destroy(r);
}

/* The same in envelope mode, where Tether keeps the buffer until the server's ack. */
static void test_send_binary_owned_envelope(void) {
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

static void test_send_binary_owned_errors_release_at_once(void) {
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

static void test_send_binary_owned_released_by_free(void) {
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

/* ------------------------------------------------------------------------------------------ */
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

static void test_poll_batches_keep_bounds_and_order(void) {
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

static void test_poll_free_in_the_middle_of_a_batch(void) {
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

static void test_runtime_threads_after_first_client(void) {
    CHECK_STATUS(tether_runtime_set_worker_threads(2), TETHER_ERR_INVALID_STATE);
}

/* ------------------------------------------------------------------------------------------ */
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
static void test_session_reset_server_lost(void) {
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

/* A second client with the same session id (a restarted process): the server's application
 * gets its messages (it used to take them for duplicates), and on_session_reset says the
 * client's state was lost. */
static void test_session_reset_client_lost(void) {
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


int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (peer_start(&P) != 0) {
        printf("cannot start tether-peer (set TETHER_PEER)\n0 passed, 1 failed\n");
        return 1;
    }
    static const test_case tests[] = {
        {"runtime_threads_before_first_client", test_runtime_threads_before_first_client},
        {"version_and_strings", test_version_and_strings},
        {"null_parameters_everywhere", test_null_parameters_everywhere},
        {"bad_urls", test_bad_urls},
        {"invalid_config_values", test_invalid_config_values},
        {"last_error_buffer_contract", test_last_error_buffer_contract},
        {"handles_are_checked", test_handles_are_checked},
        {"echo_callback_mode", test_echo_callback_mode},
        {"echo_poll_mode", test_echo_poll_mode},
        {"zero_length_messages", test_zero_length_messages},
        {"too_large_and_invalid_payloads", test_too_large_and_invalid_payloads},
        {"server_forced_disconnects", test_server_forced_disconnects},
        {"queued_while_disconnected", test_queued_while_disconnected},
        {"not_ready_when_queueing_is_off", test_not_ready_when_queueing_is_off},
        {"queue_full_and_undelivered", test_queue_full_and_undelivered},
        {"drop_oldest_policy", test_drop_oldest_policy},
        {"use_after_close", test_use_after_close},
        {"free_from_another_thread_while_sends_run", test_free_from_another_thread_while_sends_run},
        {"free_inside_callback_thread_mode", test_free_inside_callback_thread_mode},
        {"free_inside_callback_poll_mode", test_free_inside_callback_poll_mode},
        {"poll_reentrancy_is_an_error", test_poll_reentrancy_is_an_error},
        {"concurrent_poll_is_an_error", test_concurrent_poll_is_an_error},
        {"send_and_close_inside_callbacks", test_send_and_close_inside_callbacks},
        {"server_side_failures", test_server_side_failures},
        {"rejected_upgrade_is_final", test_rejected_upgrade_is_final},
        {"retries_exhausted", test_retries_exhausted},
        {"final_refusal_fails_queued_messages_at_once", test_final_refusal_fails_queued_messages_at_once},
        {"resolve_falls_back_from_a_black_hole", test_resolve_falls_back_from_a_black_hole},
        {"heartbeat_detects_a_stalled_server", test_heartbeat_detects_a_stalled_server},
        {"close_drains_the_outbox", test_close_drains_the_outbox},
        {"many_clients", test_many_clients},
        {"user_data_is_finalized", test_user_data_is_finalized},
        {"log_callback", test_log_callback},
        {"tls_with_a_custom_ca", test_tls_with_a_custom_ca},
        {"envelope_acks", test_envelope_acks},
        {"envelope_failures", test_envelope_failures},
        {"envelope_refused_as_too_large", test_envelope_refused_as_too_large},
        {"send_binary_owned_echo", test_send_binary_owned_echo},
        {"send_binary_owned_envelope", test_send_binary_owned_envelope},
        {"send_binary_owned_errors_release_at_once", test_send_binary_owned_errors_release_at_once},
        {"send_binary_owned_released_by_free", test_send_binary_owned_released_by_free},
        {"session_reset_server_lost", test_session_reset_server_lost},
        {"session_reset_client_lost", test_session_reset_client_lost},
        {"poll_batches_keep_bounds_and_order", test_poll_batches_keep_bounds_and_order},
        {"poll_free_in_the_middle_of_a_batch", test_poll_free_in_the_middle_of_a_batch},
        {"runtime_threads_after_first_client", test_runtime_threads_after_first_client},
    };
    int rc = run_tests(tests, sizeof tests / sizeof tests[0]);
    peer_stop(&P);
    return rc;
}
