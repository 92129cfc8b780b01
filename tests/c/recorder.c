/* See recorder.h. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"

/* A condition variable that waits on CLOCK_MONOTONIC (see cond_wait_ms). */
void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* Wait on `cv` (with `mu` held) for at most `left_ms`. */
void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t left_ms) {
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

void rec_init(rec *r, bool poll_mode) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    cond_init_monotonic(&r->cv);
    r->poll_mode = poll_mode;
    r->poll_on_ready_status = -1;
    r->inner_status = -1;
}

/* Recorders live on the heap: if a check fails half-way, the test returns while the client
 * still runs, and its callbacks keep using the recorder (leaked then, never freed). */
rec *rec_new(bool poll_mode) {
    rec *r = malloc(sizeof *r);
    if (r) rec_init(r, poll_mode);
    return r;
}

void rec_destroy(rec *r) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void cb_begin(rec *r) {
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

void cb_end(rec *r) {
    pthread_mutex_lock(&r->mu);
    r->in_cb--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void on_state(void *ud, tether_state from, tether_state to) {
    rec *r = ud;
    (void)from;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->states++;
    r->last_state = to;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

void on_open(void *ud) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->opens++;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

void on_ready(void *ud) {
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

void on_message(void *ud, const uint8_t *data, size_t len, tether_message_type kind) {
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

void on_close(void *ud, uint16_t code, const char *reason, bool will_reconnect) {
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

void on_reconnecting(void *ud, uint32_t attempt, uint64_t delay_ms) {
    rec *r = ud;
    (void)delay_ms;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->reconnectings++;
    r->last_attempt = attempt;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

void on_written(void *ud, uint64_t up_to) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->written_calls++;
    if (up_to > r->written_up_to) r->written_up_to = up_to;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

void on_session_reset(void *ud, const tether_session_reset *reset) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->session_resets++;
    r->last_reset = *reset;
    r->readies_at_reset = r->readies;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

void on_acked(void *ud, uint64_t id) {
    rec *r = ud;
    (void)id;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->acked++;
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

void on_send_failed(void *ud, uint64_t id, tether_status status, const char *reason) {
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

void on_error(void *ud, tether_status status, const char *message) {
    rec *r = ud;
    cb_begin(r);
    pthread_mutex_lock(&r->mu);
    r->errors++;
    r->error_seen |= 1ull << (unsigned)status;
    snprintf(r->last_error_msg, sizeof r->last_error_msg, "%s", message);
    pthread_mutex_unlock(&r->mu);
    cb_end(r);
}

void on_closed(void *ud, uint16_t code, const char *reason, size_t undelivered) {
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

void rec_finalize(void *ud) {
    rec *r = ud;
    pthread_mutex_lock(&r->mu);
    r->finalized++;
    if (r->in_cb) r->finalize_in_cb++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

tether_callbacks all_callbacks(void) {
    tether_callbacks cb = TETHER_CALLBACKS_INIT;
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
bool wait_count(rec *r, const int *field, int n, int64_t timeout_ms) {
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

int get(rec *r, const int *field) {
    pthread_mutex_lock(&r->mu);
    int v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

uint64_t get64(rec *r, const uint64_t *field) {
    pthread_mutex_lock(&r->mu);
    uint64_t v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* A config for the test peer (or `url`): fast backoff, no heartbeat unless asked. */
tether_config *test_config(const char *url, bool poll_mode) {
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

int start(rec *r, tether_config *cfg) {
    tether_callbacks cb = all_callbacks();
    return (int)tether_client_new(cfg, &cb, r, rec_finalize, &r->client);
}

/* Free the client and check the shutdown contract: one finalizer run, nothing after. */
void free_and_check(rec *r) {
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
int peer_received(void) {
    char reply[128];
    int accepted = 0, received = 0;
    if (peer_cmd(&P, "count", reply, sizeof reply) != 0 ||
        sscanf(reply, "OK %d %d", &accepted, &received) != 2)
        return -1;
    return received;
}

/* A recorder with a client started from `cfg` (NULL allowed: a failed config), which is freed
 * here; NULL on failure. */
rec *started_with(tether_config *cfg, bool poll_mode) {
    rec *r = rec_new(poll_mode);
    bool ok = r && cfg && start(r, cfg) == TETHER_OK;
    tether_config_free(cfg);
    return ok ? r : NULL;
}

/* The same with the test config for `url`. */
rec *started(const char *url, bool poll_mode) {
    return started_with(test_config(url, poll_mode), poll_mode);
}

void reset_peer(void) {
    peer_cmd(&P, "echo on", NULL, 0);
    peer_cmd(&P, "stall off", NULL, 0);
    peer_cmd(&P, "reject off", NULL, 0);
}

/* Reset the peer with its echo off; returns how many messages it has received so far, or -1. */
int quiet_peer(void) {
    reset_peer();
    int received = peer_received();
    return received >= 0 && peer_cmd(&P, "echo off", NULL, 0) == 0 ? received : -1;
}

char *last_error(tether_client *c, char *buf, size_t len) {
    buf[0] = '\0';
    tether_client_last_error(c, buf, len, NULL);
    return buf;
}

char *config_error(tether_config *c, char *buf, size_t len) {
    buf[0] = '\0';
    tether_config_last_error(c, buf, len, NULL);
    return buf;
}

/* An envelope-mode config for the reference server at `url` (token and key may be NULL). */
tether_config *envelope_config(const char *url, const char *sid, const char *token,
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
