/*
 * Reaching the server (issue 16), C side: a SOCKS5 proxy (microsocks, started here on a free
 * port), client certificates (a tether-peer that requires one), a credentials provider whose
 * token changes between attempts (the reference server refuses the old one), and what the
 * server chose (subprotocol, 101 headers). Every wait is bounded and waits on events; the one
 * poll is for microsocks to listen (it prints nothing when it is ready).
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"

extern char **environ;

/* ---- microsocks ---- */

typedef struct daemon_proc {
    pid_t pid;
    int port;
} daemon_proc;

static bool port_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Start microsocks on a free port (with user/password if not NULL); 0 once it accepts. */
static int microsocks_start(daemon_proc *d, const char *user, const char *password) {
    d->port = unused_port();
    char port[16];
    snprintf(port, sizeof port, "%d", d->port);
    const char *argv[10] = {"microsocks", "-i", "127.0.0.1", "-p", port, NULL, NULL, NULL, NULL, NULL};
    if (user) {
        argv[5] = "-u";
        argv[6] = user;
        argv[7] = "-P";
        argv[8] = password;
    }
    if (posix_spawnp(&d->pid, "microsocks", NULL, NULL, (char *const *)argv, environ) != 0)
        return -1;
    int64_t deadline = now_ms() + scaled_ms(5000);
    while (now_ms() < deadline) {
        if (port_accepts(d->port)) return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void daemon_stop(daemon_proc *d) {
    if (d->pid <= 0) return;
    kill(d->pid, SIGTERM);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

TEST(reach_through_a_socks5_proxy) {
    reset_peer();
    daemon_proc proxy = {0};
    CHECK_MSG(microsocks_start(&proxy, NULL, NULL) == 0, "microsocks did not start");
    char url[96], want[32];
    snprintf(url, sizeof url, "socks5://127.0.0.1:%d", proxy.port);
    snprintf(want, sizeof want, "127.0.0.1:%d", proxy.port);
    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_proxy(cfg, url), TETHER_OK);
    rec *r = started_with(cfg, false);
    CHECK(r != NULL);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "not ready: %s", r->last_error_msg);
    CHECK_STATUS(tether_client_send_text(r->client, "via socks", 9, NULL), TETHER_OK);
    CHECK(wait_count(r, &r->messages, 1, 10000));
    CHECK(strcmp(r->texts[0], "via socks") == 0);
    char got[64];
    CHECK_STATUS(tether_client_connection_info(r->client, TETHER_INFO_PROXY, 0, got, sizeof got,
                                               NULL),
                 TETHER_OK);
    CHECK_MSG(strcmp(got, want) == 0, "proxy %s", got);
    free_and_check(r);
    rec_destroy(r);
    daemon_stop(&proxy);

    /* A proxy that wants a password, and none given: TETHER_ERR_PROXY naming the proxy. */
    CHECK(microsocks_start(&proxy, "bob", "pa55") == 0);
    snprintf(url, sizeof url, "socks5://127.0.0.1:%d", proxy.port);
    snprintf(want, sizeof want, "127.0.0.1:%d", proxy.port);
    cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_proxy(cfg, url), TETHER_OK);
    r = started_with(cfg, false);
    CHECK(r != NULL);
    CHECK(wait_count(r, &r->errors, 1, 10000));
    pthread_mutex_lock(&r->mu);
    bool ok = (r->error_seen & (1ull << TETHER_ERR_PROXY)) && strstr(r->last_error_msg, want);
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(ok, "errors %llx: %s", (unsigned long long)r->error_seen, r->last_error_msg);
    CHECK(get(r, &r->readies) == 0);
    free_and_check(r);
    rec_destroy(r);
    daemon_stop(&proxy);
}

static size_t read_file(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, len, f) : 0;
    if (f) fclose(f);
    return n;
}

TEST(reach_with_a_client_certificate) {
    char ca_path[] = "/tmp/tether-c-mtls-ca-XXXXXX";
    int fd = mkstemp(ca_path);
    CHECK(fd >= 0);
    close(fd);
    char prefix[64], cert_path[80], key_path[80];
    snprintf(prefix, sizeof prefix, "%s-client", ca_path);
    snprintf(cert_path, sizeof cert_path, "%s.pem", prefix);
    snprintf(key_path, sizeof key_path, "%s.key", prefix);
    const char *const args[] = {"--tls-self-signed", ca_path, "--mtls-client-out", prefix, NULL};
    peer T;
    CHECK(peer_start_args(&T, args) == 0);
    char cert[8192], key[8192];
    size_t cert_len = read_file(cert_path, cert, sizeof cert);
    size_t key_len = read_file(key_path, key, sizeof key);
    CHECK(cert_len > 100 && key_len > 100);
    char url[80];
    snprintf(url, sizeof url, "wss://localhost:%d/", T.port);

    /* Files, PEM text, and none (refused by the server: a final TLS error). */
    for (int variant = 0; variant < 3; variant++) {
        tether_config *cfg = test_config(url, false);
        CHECK(cfg != NULL);
        CHECK_STATUS(tether_config_set_tls_ca_file(cfg, ca_path), TETHER_OK);
        if (variant == 0) {
            CHECK_STATUS(tether_config_set_client_cert_file(cfg, cert_path), TETHER_OK);
            CHECK_STATUS(tether_config_set_client_key_file(cfg, key_path), TETHER_OK);
        }
        if (variant == 1) {
            CHECK_STATUS(tether_config_set_client_cert_pem(cfg, (const uint8_t *)cert, cert_len),
                         TETHER_OK);
            CHECK_STATUS(tether_config_set_client_key_pem(cfg, (const uint8_t *)key, key_len),
                         TETHER_OK);
        }
        rec *r = started_with(cfg, false);
        CHECK(r != NULL);
        if (variant < 2) {
            CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "variant %d: %s", variant,
                      r->last_error_msg);
            CHECK_STATUS(tether_client_send_text(r->client, "mtls", 4, NULL), TETHER_OK);
            CHECK(wait_count(r, &r->messages, 1, 10000));
        } else {
            CHECK(wait_count(r, &r->errors, 1, 10000));
            CHECK(r->error_seen & (1ull << TETHER_ERR_CONNECT_FAILED));
            CHECK(get(r, &r->readies) == 0);
        }
        free_and_check(r);
        rec_destroy(r);
    }
    /* Half a pair is refused when the config is built. */
    tether_config *cfg = test_config(url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_client_cert_file(cfg, cert_path), TETHER_OK);
    CHECK_STATUS(tether_config_validate(cfg), TETHER_ERR_INVALID_CONFIG);
    tether_config_free(cfg);
    peer_stop(&T);
    unlink(cert_path);
    unlink(key_path);
    unlink(ca_path);
}

/* ---- the credentials provider ---- */

typedef struct provider_log {
    pthread_mutex_t mu;
    char token[32];
    bool fail_next;
    int calls;
    uint32_t attempts[16];
    bool reconnects[16];
} provider_log;

static int give_token(void *ud, uint32_t attempt, bool reconnect, tether_credentials *creds) {
    provider_log *log = ud;
    pthread_mutex_lock(&log->mu);
    int n = log->calls++;
    if (n < 16) {
        log->attempts[n] = attempt;
        log->reconnects[n] = reconnect;
    }
    bool fail = log->fail_next;
    log->fail_next = false;
    char token[32];
    memcpy(token, log->token, sizeof token);
    pthread_mutex_unlock(&log->mu);
    if (fail) {
        tether_credentials_set_error(creds, "token service down");
        return TETHER_ERR_INTERNAL;
    }
    tether_credentials_add_header(creds, "X-Attempt", "yes");
    return tether_credentials_set_token(creds, token);
}

TEST(reach_fresh_credentials_on_every_attempt) {
    static const char *const args[] = {"--token", "t1", NULL};
    peer R;
    CHECK(ref_server_start(&R, args) == 0);
    static provider_log log = {.mu = PTHREAD_MUTEX_INITIALIZER, .token = "t1"};
    /* The configured token is the old one: only the provider's fresh one gets in later. */
    tether_config *cfg = envelope_config(R.url, "c-creds", "t1", NULL);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_set_credentials_provider(cfg, give_token, &log), TETHER_OK);
    CHECK_STATUS(tether_config_set_credentials_provider(NULL, give_token, &log),
                 TETHER_ERR_NULL_PARAMETER);
    rec *r = started_with(cfg, false);
    CHECK(r != NULL);
    CHECK_MSG(wait_count(r, &r->readies, 1, 10000), "not ready: %s", r->last_error_msg);

    /* The server now takes only t2; the provider fails once, then gives t2. */
    CHECK(peer_cmd(&R, "token t2", NULL, 0) == 0);
    pthread_mutex_lock(&log.mu);
    strcpy(log.token, "t2");
    log.fail_next = true;
    pthread_mutex_unlock(&log.mu);
    CHECK(peer_cmd(&R, "drop", NULL, 0) == 0);
    CHECK_MSG(wait_count(r, &r->readies, 2, 15000), "not ready again: %s", r->last_error_msg);
    pthread_mutex_lock(&r->mu);
    bool failed = (r->error_seen & (1ull << TETHER_ERR_CREDENTIALS)) != 0;
    pthread_mutex_unlock(&r->mu);
    CHECK_MSG(failed, "errors %llx", (unsigned long long)r->error_seen);
    pthread_mutex_lock(&log.mu);
    bool ok = log.calls >= 3 && log.attempts[0] == 0 && !log.reconnects[0] &&
              log.attempts[1] >= 1 && log.reconnects[1];
    int calls = log.calls;
    pthread_mutex_unlock(&log.mu);
    CHECK_MSG(ok, "calls %d", calls);
    free_and_check(r);
    rec_destroy(r);
    peer_stop(&R);
}

/* The 101 answer's header `name` (found by index) as a number, or -1. */
static long header_number(tether_client *c, const char *name) {
    size_t headers = 0;
    char buf[64];
    if (tether_client_connection_counts(c, NULL, &headers) != TETHER_OK) return -1;
    for (size_t i = 0; i < headers; i++) {
        if (tether_client_connection_info(c, TETHER_INFO_HEADER_NAME, i, buf, sizeof buf, NULL) !=
                TETHER_OK ||
            strcmp(buf, name) != 0)
            continue;
        if (tether_client_connection_info(c, TETHER_INFO_HEADER_VALUE, i, buf, sizeof buf,
                                          NULL) != TETHER_OK)
            return -1;
        return strtol(buf, NULL, 10);
    }
    return -1;
}

TEST(reach_connection_info) {
    reset_peer();
    char buf[64];
    size_t needed = 0;
    /* Before any connection: not ready. */
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "ws://127.0.0.1:%d/", unused_port());
    rec *r = started(nowhere, false);
    CHECK(r != NULL);
    CHECK_STATUS(tether_client_connection_info(r->client, TETHER_INFO_SUBPROTOCOL, 0, buf,
                                               sizeof buf, NULL),
                 TETHER_ERR_NOT_READY);
    CHECK_STATUS(tether_client_connection_counts(r->client, NULL, NULL), TETHER_ERR_NOT_READY);
    free_and_check(r);
    rec_destroy(r);

    tether_config *cfg = test_config(P.url, false);
    CHECK(cfg != NULL);
    CHECK_STATUS(tether_config_add_subprotocol(cfg, "chat.v2"), TETHER_OK);
    CHECK_STATUS(tether_config_add_subprotocol(cfg, "chat.v1"), TETHER_OK);
    r = started_with(cfg, false);
    CHECK(r != NULL);
    CHECK(wait_count(r, &r->readies, 1, 10000));
    CHECK_STATUS(tether_client_connection_info(r->client, TETHER_INFO_SUBPROTOCOL, 0, buf,
                                               sizeof buf, &needed),
                 TETHER_OK);
    CHECK_MSG(strcmp(buf, "chat.v2") == 0 && needed == 8, "subprotocol %s", buf);
    CHECK_STATUS(tether_client_connection_info(r->client, TETHER_INFO_SUBPROTOCOL, 0, buf, 4,
                                               &needed),
                 TETHER_ERR_BUFFER_TOO_SMALL);
    CHECK(strcmp(buf, "cha") == 0 && needed == 8);
    uint64_t connection = 0;
    size_t headers = 0;
    CHECK_STATUS(tether_client_connection_counts(r->client, &connection, &headers), TETHER_OK);
    CHECK(connection == 1 && headers >= 3);
    /* tether-peer numbers the connections it accepted in x-tether-connection. */
    long first = header_number(r->client, "x-tether-connection");
    CHECK(first >= 1);
    CHECK_STATUS(tether_client_connection_info(r->client, TETHER_INFO_HEADER_NAME, headers, buf,
                                               sizeof buf, NULL),
                 TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_client_connection_info(r->client, 99, 0, buf, sizeof buf, NULL),
                 TETHER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(tether_client_connection_info(r->client, TETHER_INFO_PEER, 0, buf, sizeof buf,
                                               NULL),
                 TETHER_OK);
    CHECK(strncmp(buf, "127.0.0.1:", 10) == 0);
    CHECK_STATUS(tether_client_connection_info(r->client, TETHER_INFO_PROXY, 0, buf, sizeof buf,
                                               NULL),
                 TETHER_OK);
    CHECK(buf[0] == '\0');
    /* After a reconnect: the new connection's values. */
    CHECK(peer_cmd(&P, "drop", NULL, 0) == 0);
    CHECK(wait_count(r, &r->readies, 2, 10000));
    CHECK_STATUS(tether_client_connection_counts(r->client, &connection, NULL), TETHER_OK);
    CHECK(connection == 2);
    CHECK(header_number(r->client, "x-tether-connection") == first + 1);
    free_and_check(r);
    rec_destroy(r);
}
