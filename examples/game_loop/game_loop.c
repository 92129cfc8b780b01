/*
 * A fixed-timestep game loop that owns its network client in poll mode.
 *
 * Every frame (60 per second): poll the client once with an event budget (the callbacks run
 * right here, on the game thread, so they may touch game state without locks), update the
 * game, "draw" (print a line). The network never blocks the loop: while the link is down the
 * frames keep coming, messages queue in Tether's outbox, and the client reconnects by itself.
 *
 *   cc game_loop.c $(pkg-config --cflags --libs tether) -o game_loop
 *   ./game_loop ws://127.0.0.1:9001/ [frames]      (frames 0 or absent: until SIGINT/SIGTERM)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, clock_nanosleep */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tether.h>

#define FRAME_NS (1000000000L / 60)
#define EVENT_BUDGET 64 /* events handled per frame at most: a flood cannot eat a frame */

typedef struct game {
    long frame;
    double x, vx; /* something to simulate */
    int echoes;
    int readies;
} game;

static volatile sig_atomic_t quit;
static void on_signal(int sig) {
    (void)sig;
    quit = 1;
}

/* Callbacks: run inside tether_client_poll, on the game thread. */
static void on_ready(void *ud) {
    game *g = ud;
    g->readies++;
    printf("event: ready (frame %ld)\n", g->frame);
}
static void on_close(void *ud, uint16_t code, const char *reason, bool will_reconnect) {
    game *g = ud;
    printf("event: disconnected code=%u reason=\"%s\" will_reconnect=%d (frame %ld)\n", code, reason,
           will_reconnect, g->frame);
}
static void on_reconnecting(void *ud, uint32_t attempt, uint64_t delay_ms) {
    game *g = ud;
    printf("event: reconnecting attempt=%u delay=%llums (frame %ld)\n", attempt,
           (unsigned long long)delay_ms, g->frame);
}
static void on_message(void *ud, const uint8_t *data, size_t len, tether_message_type kind) {
    game *g = ud;
    (void)kind;
    g->echoes++;
    printf("event: message \"%.*s\"\n", (int)len, (const char *)data);
}
static void on_send_failed(void *ud, uint64_t id, tether_status status, const char *reason) {
    (void)ud;
    printf("event: message %llu failed (%s): %s\n", (unsigned long long)id, tether_status_str(status),
           reason);
}

static void next_frame(struct timespec *t) {
    t->tv_nsec += FRAME_NS;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_nsec -= 1000000000L;
        t->tv_sec++;
    }
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "ws://127.0.0.1:9001/";
    long max_frames = argc > 2 ? atol(argv[2]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* sigaction, not signal(): in strict C/POSIX mode signal() resets the handler after the
     * first signal, and a second SIGTERM would kill the process in the middle of the close. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    game g;
    memset(&g, 0, sizeof g);
    g.vx = 1.0;

    tether_config *config = tether_config_new();
    if (tether_config_set_url(config, url) != TETHER_OK) {
        char why[256];
        tether_config_last_error(config, why, sizeof why, NULL);
        fprintf(stderr, "%s\n", why);
        tether_config_free(config);
        return 2;
    }
    tether_config_set_dispatch(config, TETHER_DISPATCH_POLL);
    tether_config_set_backoff(config, 100, 1000, 2.0); /* come back fast after a drop */
    tether_config_set_heartbeat(config, 1000, 1000);   /* find a dead link within 2 s */

    tether_callbacks cb = TETHER_CALLBACKS_INIT;
    cb.on_ready = on_ready;
    cb.on_close = on_close;
    cb.on_reconnecting = on_reconnecting;
    cb.on_message = on_message;
    cb.on_send_failed = on_send_failed;
    tether_client *client = NULL;
    tether_status st = tether_client_new(config, &cb, &g, NULL, &client);
    tether_config_free(config);
    if (st != TETHER_OK) {
        fprintf(stderr, "tether_client_new: %s\n", tether_status_str(st));
        return 1;
    }

    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!quit && (max_frames == 0 || g.frame < max_frames)) {
        /* 1. Network: run at most EVENT_BUDGET callbacks, never wait. */
        size_t ran = 0;
        tether_client_poll(client, EVENT_BUDGET, &ran);

        /* 2. Simulation, fixed step. */
        g.x += g.vx / 60.0;
        if (g.x > 10 || g.x < 0) g.vx = -g.vx;
        if (g.frame % 30 == 0) {
            /* Queued while the link is down, flushed first after the reconnect. */
            char text[32];
            int n = snprintf(text, sizeof text, "tick %ld", g.frame);
            st = tether_client_send_text(client, text, (size_t)n, NULL);
            if (st != TETHER_OK) printf("send: %s\n", tether_status_str(st));
        }

        /* 3. "Draw". */
        printf("frame %ld x=%.2f state=%s events=%zu\n", g.frame, g.x,
               tether_state_str(tether_client_state(client)), ran);
        g.frame++;

        /* 4. Sleep until the next frame boundary. */
        next_frame(&next);
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }

    tether_stats stats = TETHER_STATS_INIT;
    tether_client_stats(client, &stats);
    printf("closing\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tether_client_free(client); /* graceful close: drains the outbox, closing handshake */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long close_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("summary frames=%ld readies=%d reconnects=%llu echoes=%d close_ms=%ld\n", g.frame,
           g.readies, (unsigned long long)stats.reconnects, g.echoes, close_ms);
    return 0;
}
