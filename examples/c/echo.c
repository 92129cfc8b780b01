/*
 * A short echo client: connect, send three messages, print the echoes, close.
 *
 *   cc echo.c $(pkg-config --cflags --libs tether) -o echo
 *   ./echo ws://127.0.0.1:9001/
 *
 * Callbacks run on the client's dispatcher thread; the main thread waits on a condition
 * variable (with a deadline) until every echo arrived.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <tether.h>

#define MESSAGES 3

typedef struct app {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int echoes;
} app;

static void on_ready(void *user_data) {
    (void)user_data;
    printf("connected\n");
}

static void on_message(void *user_data, const uint8_t *data, size_t len, tether_message_type kind) {
    app *a = user_data;
    /* `data` is borrowed for this call only (and not NUL-terminated): print it with its length. */
    printf("echo (%s): %.*s\n", kind == TETHER_MESSAGE_TEXT ? "text" : "binary", (int)len,
           (const char *)data);
    pthread_mutex_lock(&a->mu);
    a->echoes++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void on_error(void *user_data, tether_status status, const char *message) {
    (void)user_data;
    fprintf(stderr, "error (%s): %s\n", tether_status_str(status), message);
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "ws://127.0.0.1:9001/";
    app a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

    tether_config *config = tether_config_new();
    if (tether_config_set_url(config, url) != TETHER_OK) {
        char why[256];
        tether_config_last_error(config, why, sizeof why, NULL);
        fprintf(stderr, "%s\n", why); /* e.g. unsupported scheme `http` (did you mean ws://?) */
        tether_config_free(config);
        return 2;
    }
    tether_callbacks callbacks = TETHER_CALLBACKS_INIT;
    callbacks.on_ready = on_ready;
    callbacks.on_message = on_message;
    callbacks.on_error = on_error;

    tether_client *client = NULL;
    tether_status status = tether_client_new(config, &callbacks, &a, NULL, &client);
    tether_config_free(config); /* the client keeps its own copy */
    if (status != TETHER_OK) {
        fprintf(stderr, "tether_client_new: %s\n", tether_status_str(status));
        return 1;
    }

    /* Sends are queued until the connection is ready: no need to wait for on_ready. */
    for (int i = 0; i < MESSAGES; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "hello %d", i + 1);
        uint64_t id = 0;
        status = tether_client_send_text(client, text, (size_t)len, &id);
        if (status != TETHER_OK) {
            char why[256];
            tether_client_last_error(client, why, sizeof why, NULL);
            fprintf(stderr, "send failed: %s\n", why);
        }
    }

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&a.mu);
    while (a.echoes < MESSAGES) {
        if (pthread_cond_timedwait(&a.cv, &a.mu, &deadline) != 0) break;
    }
    int echoes = a.echoes;
    pthread_mutex_unlock(&a.mu);

    tether_client_close(client, 1000, "bye");
    tether_client_free(client); /* waits for the close; no callback runs after this */
    printf("%d of %d messages echoed\n", echoes, MESSAGES);
    return echoes == MESSAGES ? 0 : 1;
}
