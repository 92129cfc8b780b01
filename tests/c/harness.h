/*
 * Minimal test harness for Tether's C tests: test registration, checks, monotonic time,
 * and a controllable `tether-peer` child process (posix_spawn + pipes, every read bounded).
 *
 * Output: one line per test ("ok - name" / "FAIL - name: ..."), then "N passed, M failed";
 * with the argument --list, the registered test names, one per line, in run order.
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

/* ---- test registry ----
 * TEST(name) { ... } defines the test function test_<name> and registers it under "name"
 * (a constructor runs before main), so a test's name cannot drift from its function, and a
 * test cannot be defined and forgotten. The runner sorts the tests by order, then source file,
 * then line, so the run order does not depend on link order. TEST_FIRST / TEST_LAST are for
 * the two tests that must run before any client exists / after all others. Two tests with one
 * name are refused at start. */
typedef void (*test_fn)(void);
typedef struct test_case {
    const char *name;
    test_fn fn;
    int order; /* TEST_ORDER_FIRST, _NORMAL or _LAST */
    const char *file;
    int line;
} test_case;

enum { TEST_ORDER_FIRST = 0, TEST_ORDER_NORMAL = 1, TEST_ORDER_LAST = 2 };

void test_register(const char *name, test_fn fn, int order, const char *file, int line);

#define TEST_ORDERED(name, order)                                                  \
    static void test_##name(void);                                                 \
    __attribute__((constructor)) static void test_register_##name(void) {          \
        test_register(#name, test_##name, order, __FILE__, __LINE__);              \
    }                                                                              \
    static void test_##name(void)

#define TEST(name) TEST_ORDERED(name, TEST_ORDER_NORMAL)
#define TEST_FIRST(name) TEST_ORDERED(name, TEST_ORDER_FIRST)
#define TEST_LAST(name) TEST_ORDERED(name, TEST_ORDER_LAST)

/* Runs the registered tests (TETHER_TEST_FILTER / TETHER_TEST_SKIP apply), prints the summary;
 * returns the process exit code. */
int run_tests(void);

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

/* The test peer every test shares, started by main (harness.c) before the tests run. */
extern peer P;

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

/* A loopback address where TCP connects hang, the way a firewalled or unreachable address
 * behaves: a listener on 127.0.0.1 with a full accept backlog that never accepts (Linux then
 * drops further SYNs). */
#define BLACK_HOLE_MAX_FILL 16
typedef struct black_hole {
    int listener;
    int fill[BLACK_HOLE_MAX_FILL]; /* the connections that fill the backlog */
    int filled;
    int port;
} black_hole;
/* Listen with backlog 0 and connect until one connect hangs for 300 ms: that proves the black
 * hole rather than assuming how the kernel sizes the backlog. Returns 0 on success, -1 (with
 * everything released) otherwise. */
int black_hole_open(black_hole *h);
void black_hole_close(black_hole *h);

#endif
