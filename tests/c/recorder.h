/*
 * The recorder: the user_data of the test clients, with callbacks that count and keep what
 * they were given (under a lock, signalling a condition variable), the invariants every test
 * checks on free (one finalizer run, no overlapping callback, nothing after on_closed or after
 * free, one callback thread), and the helpers that start clients against the shared peer `P`.
 * Shared by every tests/c/test_*.c file.
 */
#ifndef TETHER_TEST_RECORDER_H
#define TETHER_TEST_RECORDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "tether.h"

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
void cond_init_monotonic(pthread_cond_t *cv);

/* Wait on `cv` (with `mu` held) for at most `left_ms`. */
void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t left_ms);

void rec_init(rec *r, bool poll_mode);

/* Recorders live on the heap: if a check fails half-way, the test returns while the client
 * still runs, and its callbacks keep using the recorder (leaked then, never freed). */
rec *rec_new(bool poll_mode);

void rec_destroy(rec *r);

void cb_begin(rec *r);

void cb_end(rec *r);

void on_state(void *ud, tether_state from, tether_state to);

void on_open(void *ud);

void on_ready(void *ud);

void on_message(void *ud, const uint8_t *data, size_t len, tether_message_type kind);

void on_close(void *ud, uint16_t code, const char *reason, bool will_reconnect);

void on_reconnecting(void *ud, uint32_t attempt, uint64_t delay_ms);

void on_written(void *ud, uint64_t up_to);

void on_session_reset(void *ud, const tether_session_reset *reset);

void on_acked(void *ud, uint64_t id);

void on_send_failed(void *ud, uint64_t id, tether_status status, const char *reason);

void on_error(void *ud, tether_status status, const char *message);

void on_closed(void *ud, uint16_t code, const char *reason, size_t undelivered);

void rec_finalize(void *ud);

tether_callbacks all_callbacks(void);

/* Wait until *field >= n (read under the recorder's lock). Poll mode drives the callbacks
 * with tether_client_poll_timeout; callback mode waits on the condition variable. */
bool wait_count(rec *r, const int *field, int n, int64_t timeout_ms);

int get(rec *r, const int *field);

uint64_t get64(rec *r, const uint64_t *field);

/* A config for the test peer (or `url`): fast backoff, no heartbeat unless asked. */
tether_config *test_config(const char *url, bool poll_mode);

int start(rec *r, tether_config *cfg);

/* Free the client and check the shutdown contract: one finalizer run, nothing after. */
void free_and_check(rec *r);

/* How many messages the peer has received so far ("count"), or -1. */
int peer_received(void);

/* A recorder with a client started from `cfg` (NULL allowed: a failed config), which is freed
 * here; NULL on failure. */
rec *started_with(tether_config *cfg, bool poll_mode);

/* The same with the test config for `url`. */
rec *started(const char *url, bool poll_mode);

void reset_peer(void);

/* Reset the peer with its echo off; returns how many messages it has received so far, or -1. */
int quiet_peer(void);

char *last_error(tether_client *c, char *buf, size_t len);

char *config_error(tether_config *c, char *buf, size_t len);

/* An envelope-mode config for the reference server at `url` (token and key may be NULL). */
tether_config *envelope_config(const char *url, const char *sid, const char *token,
                               const char *key);

#endif
