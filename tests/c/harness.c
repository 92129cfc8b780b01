/* See harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tether.h"

extern char **environ;

int test_failed;

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t scaled_ms(int64_t ms) {
    static int64_t scale = 0;
    if (scale == 0) {
        const char *s = getenv("TETHER_TIMEOUT_SCALE");
        scale = (s && atoi(s) > 0) ? atoi(s) : 1;
    }
    return ms * scale;
}

void check_failed(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "    check failed at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    test_failed = 1;
}

#define MAX_TESTS 256
static test_case registered[MAX_TESTS];
static size_t registered_count;
static int registry_overflow;

void test_register(const char *name, test_fn fn, int order, const char *file, int line) {
    if (registered_count == MAX_TESTS) {
        registry_overflow = 1;
        return;
    }
    test_case t = {name, fn, order, file, line};
    registered[registered_count++] = t;
}

static int by_order_file_line(const void *a, const void *b) {
    const test_case *x = a, *y = b;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    int c = strcmp(x->file, y->file);
    if (c != 0) return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* Sort the registry; 0, or -1 (with a message) when it is unusable. */
static int sort_registry(void) {
    if (registry_overflow) {
        printf("more than %d tests registered: raise MAX_TESTS in harness.c\n", MAX_TESTS);
        return -1;
    }
    qsort(registered, registered_count, sizeof registered[0], by_order_file_line);
    for (size_t i = 0; i < registered_count; i++)
        for (size_t j = i + 1; j < registered_count; j++)
            if (strcmp(registered[i].name, registered[j].name) == 0) {
                printf("two tests named %s (%s:%d, %s:%d)\n", registered[i].name,
                       registered[i].file, registered[i].line, registered[j].file,
                       registered[j].line);
                return -1;
            }
    return 0;
}

int run_tests(void) {
    const char *filter = getenv("TETHER_TEST_FILTER");
    const char *skip = getenv("TETHER_TEST_SKIP");
    int passed = 0, failed = 0;
    for (size_t i = 0; i < registered_count; i++) {
        const test_case *t = &registered[i];
        if (filter && *filter && !strstr(t->name, filter)) continue;
        if (skip && *skip && strstr(skip, t->name)) {
            printf("skip - %s (TETHER_TEST_SKIP)\n", t->name);
            continue;
        }
        test_failed = 0;
        int64_t start = now_ms();
        t->fn();
        int64_t took = now_ms() - start;
        if (test_failed) {
            failed++;
            printf("FAIL - %s (%lld ms)\n", t->name, (long long)took);
        } else {
            passed++;
            printf("ok - %s (%lld ms)\n", t->name, (long long)took);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}

peer P;

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sort_registry() != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < registered_count; i++) printf("%s\n", registered[i].name);
        return 0;
    }
    if (peer_start(&P) != 0) {
        printf("cannot start tether-peer (set TETHER_PEER)\n0 passed, 1 failed\n");
        return 1;
    }
    int rc = run_tests();
    peer_stop(&P);
    return rc;
}

/* Read one line from the peer into line (without the newline), waiting at most timeout_ms.
 * Returns 0, or -1 on timeout / EOF / error. */
static int peer_read_line(peer *p, char *line, size_t len, int64_t timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(p->buf, '\n', p->buf_len);
        if (nl) {
            size_t n = (size_t)(nl - p->buf);
            size_t copy = n < len - 1 ? n : len - 1;
            memcpy(line, p->buf, copy);
            line[copy] = '\0';
            memmove(p->buf, nl + 1, p->buf_len - n - 1);
            p->buf_len -= n + 1;
            return 0;
        }
        if (p->buf_len == sizeof p->buf) return -1; /* line too long */
        int64_t left = deadline - now_ms();
        if (left <= 0) return -1;
        struct pollfd pfd = {.fd = p->from_child, .events = POLLIN, .revents = 0};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t got = read(p->from_child, p->buf + p->buf_len, sizeof p->buf - p->buf_len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        p->buf_len += (size_t)got;
    }
}

static int spawn_peer(peer *p, const char *binary, const char *const *args);

int peer_start(peer *p) { return peer_start_args(p, NULL); }

int peer_start_args(peer *p, const char *const *args) {
    const char *binary = getenv("TETHER_PEER");
    if (!binary || !*binary) binary = "target/debug/tether-peer";
    return spawn_peer(p, binary, args);
}

int ref_server_start(peer *p, const char *const *args) {
    const char *binary = getenv("TETHER_REF_SERVER");
    if (!binary || !*binary) binary = "target/debug/tether-ref-server";
    return spawn_peer(p, binary, args);
}

int ref_server_kill_and_restart(peer *p, const char *const *args) {
    int port = p->port;
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = -1;
    }
    peer_stop(p); /* closes the pipes */
    char port_arg[16];
    snprintf(port_arg, sizeof port_arg, "%d", port);
    const char *argv[14] = {"--port", port_arg, NULL};
    for (size_t i = 0; args && args[i] && i < 11; i++) {
        argv[i + 2] = args[i];
        argv[i + 3] = NULL;
    }
    if (ref_server_start(p, argv) != 0) return -1;
    return p->port == port ? 0 : -1;
}

static int spawn_peer(peer *p, const char *binary, const char *const *args) {
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->to_child = p->from_child = -1;
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0) return -1;
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    char *argv[16] = {(char *)binary, NULL};
    for (size_t i = 0; args && args[i] && i < 14; i++) {
        argv[i + 1] = (char *)args[i];
        argv[i + 2] = NULL;
    }
    int rc = posix_spawn(&p->pid, binary, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in_pipe[0]);
    close(out_pipe[1]);
    p->to_child = in_pipe[1];
    p->from_child = out_pipe[0];
    if (rc != 0) {
        fprintf(stderr, "cannot spawn %s: %s\n", binary, strerror(rc));
        p->pid = -1;
        peer_stop(p);
        return -1;
    }
    char line[128];
    if (peer_read_line(p, line, sizeof line, scaled_ms(10000)) != 0 ||
        sscanf(line, "PORT %d", &p->port) != 1) {
        fprintf(stderr, "%s did not announce its port\n", binary);
        peer_stop(p);
        return -1;
    }
    snprintf(p->url, sizeof p->url, "ws://127.0.0.1:%d/", p->port);
    return 0;
}

int peer_cmd(peer *p, const char *command, char *reply, size_t reply_len) {
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", command);
    if (n <= 0 || (size_t)n >= sizeof line) return -1;
    if (write(p->to_child, line, (size_t)n) != n) return -1;
    char answer[512];
    if (peer_read_line(p, answer, sizeof answer, scaled_ms(15000)) != 0) {
        fprintf(stdout, "    peer: no answer to '%s'\n", command);
        return -1;
    }
    if (reply && reply_len) {
        snprintf(reply, reply_len, "%s", answer);
    }
    if (strncmp(answer, "OK", 2) != 0) {
        fprintf(stdout, "    peer: '%s' -> '%s'\n", command, answer);
        return -1;
    }
    return 0;
}

void peer_stop(peer *p) {
    if (p->to_child >= 0) {
        /* Closing its stdin makes the peer exit; its stdout then reaches EOF. */
        close(p->to_child);
        p->to_child = -1;
    }
    if (p->pid > 0) {
        int64_t deadline = now_ms() + scaled_ms(5000);
        bool exited = false;
        while (p->from_child >= 0 && now_ms() < deadline) {
            struct pollfd pfd = {.fd = p->from_child, .events = POLLIN, .revents = 0};
            int r = poll(&pfd, 1, (int)(deadline - now_ms()));
            if (r <= 0) break;
            char sink[256];
            if (read(p->from_child, sink, sizeof sink) <= 0) {
                exited = true;
                break;
            }
        }
        if (!exited) kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = -1;
    }
    if (p->from_child >= 0) {
        close(p->from_child);
        p->from_child = -1;
    }
}

int unused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = 1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
}

/* A non-blocking connect to 127.0.0.1:port: 1 if it connected within wait_ms (the socket is
 * stored in *fd_out), 0 if it was still pending then (closed), -1 on an error. */
static int probe_connect(int port, int wait_ms, int *fd_out) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        *fd_out = fd;
        return 1;
    }
    if (errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int n;
    do {
        n = poll(&pfd, 1, wait_ms);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        close(fd);
        return 0;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 1;
}

int black_hole_open(black_hole *h) {
    memset(h, 0, sizeof *h);
    h->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->listener < 0) return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(h->listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(h->listener, 0) != 0 ||
        getsockname(h->listener, (struct sockaddr *)&addr, &len) != 0) {
        black_hole_close(h);
        return -1;
    }
    h->port = ntohs(addr.sin_port);
    while (h->filled < BLACK_HOLE_MAX_FILL) {
        int fd = -1;
        int r = probe_connect(h->port, 300, &fd);
        if (r == 0) return 0; /* this connect hung: the hole is ready */
        if (r < 0) break;
        h->fill[h->filled++] = fd;
    }
    fprintf(stderr, "black hole on port %d: connects never hung\n", h->port);
    black_hole_close(h);
    return -1;
}

void black_hole_close(black_hole *h) {
    for (int i = 0; i < h->filled; i++) close(h->fill[i]);
    if (h->listener >= 0) close(h->listener);
    h->filled = 0;
    h->listener = -1;
}
