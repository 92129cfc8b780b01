/*
 * Size-prefixed structs (tether_callbacks, tether_stats): the library reads and writes only the
 * struct_size bytes the caller declares, so a program built against an older, shorter struct
 * is neither over-read nor overflowed, a newer program's longer tail is left alone, and a size
 * below the first version (0 from `= {0}` included) is refused with a message. The "old"
 * structs live in heap blocks of exactly their declared size: ASan reports any byte the library
 * touches beyond them; guard bytes catch the same under valgrind and without sanitizers.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "recorder.h"

/* The first version of tether_callbacks ends with on_closed (on_session_reset came after). */
#define CALLBACKS_V1_SIZE offsetof(tether_callbacks, on_session_reset)

enum { GUARD = 64, GUARD_BYTE = 0xA5 };

static bool guard_intact(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != GUARD_BYTE) return false;
    return true;
}

TEST(sized_callbacks_zero_or_too_small_is_refused) {
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    const size_t sizes[] = {0, sizeof(size_t), CALLBACKS_V1_SIZE - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tether_callbacks cb;
        memset(&cb, 0, sizeof cb); /* what `= {0}` gives: no struct_size */
        cb.struct_size = sizes[i];
        tether_client *client = NULL;
        CHECK_STATUS(tether_client_new(cfg, &cb, NULL, NULL, &client),
                     TETHER_ERR_INVALID_ARGUMENT);
        CHECK(client == NULL);
        char buf[256];
        const char *msg = config_error(cfg, buf, sizeof buf);
        CHECK_MSG(strstr(msg, "struct_size") && strstr(msg, "TETHER_CALLBACKS_INIT"),
                  "message: %s", msg);
    }
    tether_config_free(cfg);
}

/* A program built before on_session_reset: its struct ends there, in a block of exactly that
 * size. The client works (ready, echo, close) and nothing reads past the block. */
TEST(sized_callbacks_old_struct_is_not_over_read) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    tether_callbacks *cb = malloc(CALLBACKS_V1_SIZE);
    CHECK(cb != NULL);
    memset(cb, 0, CALLBACKS_V1_SIZE);
    cb->struct_size = CALLBACKS_V1_SIZE;
    cb->on_ready = on_ready;
    cb->on_message = on_message;
    cb->on_error = on_error;
    cb->on_closed = on_closed;
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_client_new(cfg, cb, r, rec_finalize, &r->client), TETHER_OK);
    free(cb); /* copied by tether_client_new */
    tether_config_free(cfg);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "never ready: %s", r->last_error_msg);
    CHECK_STATUS(tether_client_send_text(r->client, "old", 3, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    CHECK_STATUS(tether_client_close(r->client, 1000, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->closed, 1, 10000));
    free_and_check(r);
    rec_destroy(r);
}

/* A program built against a newer header: a longer struct (its extra callbacks unknown here)
 * is accepted, and only this library's fields are read. */
TEST(sized_callbacks_newer_struct_is_accepted) {
    reset_peer();
    rec *r = rec_new(false);
    CHECK(r != NULL);
    unsigned char *block = malloc(sizeof(tether_callbacks) + GUARD);
    CHECK(block != NULL);
    memset(block, GUARD_BYTE, sizeof(tether_callbacks) + GUARD); /* "newer" callbacks: garbage */
    tether_callbacks *cb = (tether_callbacks *)(void *)block;
    tether_callbacks known = all_callbacks();
    memcpy(cb, &known, sizeof known);
    cb->struct_size = sizeof(tether_callbacks) + GUARD;
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_client_new(cfg, cb, r, rec_finalize, &r->client), TETHER_OK);
    tether_config_free(cfg);
    CHECK(guard_intact(block + sizeof(tether_callbacks), GUARD));
    free(block);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "never ready: %s", r->last_error_msg);
    free_and_check(r);
    rec_destroy(r);
}

TEST(sized_stats_zero_or_too_small_is_refused) {
    rec *r = started(P.url, false);
    CHECK(r != NULL);
    const size_t sizes[] = {0, sizeof(size_t), sizeof(tether_stats) - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char block[sizeof(tether_stats) + GUARD];
        memset(block, GUARD_BYTE, sizeof block);
        tether_stats *s = (tether_stats *)(void *)block;
        s->struct_size = sizes[i];
        CHECK_STATUS(tether_client_stats(r->client, s), TETHER_ERR_INVALID_ARGUMENT);
        /* Nothing written: every byte after struct_size is still the guard. */
        CHECK(s->struct_size == sizes[i]);
        CHECK(guard_intact(block + sizeof(size_t), sizeof block - sizeof(size_t)));
        char buf[256];
        const char *msg = last_error(r->client, buf, sizeof buf);
        CHECK_MSG(strstr(msg, "struct_size") && strstr(msg, "TETHER_STATS_INIT"), "message: %s",
                  msg);
    }
    free_and_check(r);
    rec_destroy(r);
}

/* Exactly sizeof(tether_stats) in a block of that size (ASan: no byte written past it), and a
 * newer program's longer struct: its extra fields (the guard) are left alone. */
TEST(sized_stats_are_not_over_written) {
    rec *r = started(P.url, false);
    CHECK(r != NULL);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    tether_stats *exact = malloc(sizeof(tether_stats));
    CHECK(exact != NULL);
    memset(exact, GUARD_BYTE, sizeof *exact);
    exact->struct_size = sizeof *exact;
    CHECK_STATUS(tether_client_stats(r->client, exact), TETHER_OK);
    CHECK(exact->struct_size == sizeof *exact && exact->send_failures == 0);
    free(exact);

    unsigned char block[sizeof(tether_stats) + GUARD];
    memset(block, GUARD_BYTE, sizeof block);
    tether_stats *newer = (tether_stats *)(void *)block;
    newer->struct_size = sizeof block;
    CHECK_STATUS(tether_client_stats(r->client, newer), TETHER_OK);
    CHECK(newer->struct_size == sizeof block); /* left as the caller set it */
    CHECK(newer->reconnects == 0 && newer->send_failures == 0);
    CHECK(guard_intact(block + sizeof(tether_stats), GUARD));
    free_and_check(r);
    rec_destroy(r);
}
