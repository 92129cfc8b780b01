/*
 * Minimal test harness for Tether's C tests: test registration, checks, monotonic time,
 * and a controllable `tether-peer` child process (posix_spawn + pipes, every read bounded).
 *
 * Output: one line per test ("ok - name" / "FAIL - name: ..."), then "N passed, M failed".
 * Environment:
 *   TETHER_PEER            path of the tether-peer binary (default target/debug/tether-peer)
 *   TETHER_REF_SERVER      path of tether-ref-server, the envelope reference server
 *   TETHER_TIMEOUT_SCALE   multiply every timeout (e.g. 4 under valgrind); default 1
 *   TETHER_TEST_FILTER     run only tests whose name contains this string
 *   TETHER_TEST_SKIP       skip the tests named in this string (e.g. "a,b")
 */
#ifndef TETHER_TEST_HARNESS_H
#define TETHER_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- time ---- */
int64_t now_ms(void);
/* A timeout scaled by TETHER_TIMEOUT_SCALE. */
int64_t scaled_ms(int64_t ms);

/* ---- checks ---- */
extern int test_failed; /* set by CHECK in the running test */
void check_failed(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            check_failed(__FILE__, __LINE__, "%s", #cond);                         \
            return;                                                                \
        }                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                       \
    do {                                                                           \
        if (!(cond)) {                                                             \
            check_failed(__FILE__, __LINE__, __VA_ARGS__);                         \
            return;                                                                \
        }                                                                          \
    } while (0)

/* Compare a tether_status (as int) with the expected one, printing both names. */
#define CHECK_STATUS(expr, expected)                                               \
    do {                                                                           \
        int got_ = (int)(expr);                                                    \
        int want_ = (int)(expected);                                               \
        if (got_ != want_) {                                                       \
            check_failed(__FILE__, __LINE__, "%s: got %d (%s), want %d (%s)", #expr, \
                         got_, tether_status_str(got_), want_, tether_status_str(want_)); \
            return;                                                                \
        }                                                                          \
    } while (0)

/* ---- test table ---- */
typedef void (*test_fn)(void);
typedef struct test_case {
    const char *name;
    test_fn fn;
} test_case;

/* Runs the tests, prints the summary; returns the process exit code. */
int run_tests(const test_case *tests, size_t count);

/* ---- the peer ---- */
typedef struct peer {
    pid_t pid;
    int to_child;   /* its stdin */
    int from_child; /* its stdout */
    char buf[4096]; /* bytes read but not consumed yet */
    size_t buf_len;
    int port;
    char url[64];
} peer;

/* Start tether-peer and read its "PORT n" line (bounded). Returns 0 on success. */
int peer_start(peer *p);
/* The same with extra arguments (NULL-terminated), e.g. {"--tls-self-signed", path, NULL}. */
int peer_start_args(peer *p, const char *const *args);
/* Start the envelope reference server (TETHER_REF_SERVER, default
 * target/debug/tether-ref-server) with extra arguments (NULL-terminated array, may be NULL). */
int ref_server_start(peer *p, const char *const *args);
/* Lose the reference server's state the way a crash does: kill it with SIGKILL and start a fresh
 * one with `args` (may be NULL) on the same port. Returns 0 on success. */
int ref_server_kill_and_restart(peer *p, const char *const *args);
/* Send one command line and read the answer into reply (may be NULL). Returns 0 when the
 * answer starts with "OK", -1 otherwise (error, timeout, or ERR). */
int peer_cmd(peer *p, const char *command, char *reply, size_t reply_len);
/* "quit", wait for the exit (bounded; killed otherwise), release everything. */
void peer_stop(peer *p);

/* A TCP port on 127.0.0.1 with nothing listening (bound then closed). */
int unused_port(void);

#endif
