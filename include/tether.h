/*
 * tether.h - the C API of Tether, a resilient WebSocket client.
 *
 * One Rust core does everything (reconnect with backoff, heartbeat, a bounded outbox that
 * never drops a message silently, acks in envelope mode); this header is a thin C layer.
 * User guide and quickstarts: docs/C_API.md. Link with pkg-config (`pkg-config --cflags
 * --libs tether`) or CMake (`find_package(Tether)`, target `Tether::tether`). C99 or later;
 * the header is also valid C++ (extern "C").
 *
 * CONVENTIONS
 *   - Names are tether_<type>_<verb>. Handles (tether_config *, tether_client *) are opaque
 *     tokens, not addresses: never dereference them. Every constructor has a _free that
 *     accepts NULL (and ignores an already-freed handle).
 *   - Fallible calls return a tether_status (TETHER_OK is 0). The details of a failure are
 *     in the handle's last-error message: tether_client_last_error() /
 *     tether_config_last_error(), copied into your buffer. tether_status_str() gives a static
 *     description of any code.
 *   - Parameters come in the order: object, inputs, outputs. Outputs are written only on
 *     success (exception: the *_last_error() functions, which behave like snprintf).
 *     Optional outputs are marked "may be NULL"; every other pointer is required
 *     (TETHER_ERR_NULL_PARAMETER otherwise).
 *   - A buffer is always followed by its size_t length. A zero length may come with a NULL
 *     pointer. Text passed in is UTF-8 and need not be NUL-terminated; strings passed to
 *     your callbacks are NUL-terminated UTF-8.
 *   - Durations are in milliseconds (uint64_t); message ids are uint64_t (1, 2, 3, ...).
 *   - Enum inputs are taken as int, so an out-of-range value is an error
 *     (TETHER_ERR_INVALID_ARGUMENT), not undefined behaviour.
 *   - Nothing aborts the process, and no Rust panic crosses this boundary: a bug inside
 *     Tether returns TETHER_ERR_PANIC.
 *
 * THREAD SAFETY
 *   - tether_client_send_text/_send_binary/_send_binary_owned/_close/_state/_stats/
 *     _last_error/_delivery_status/_wait_closed/_wait_acked may be called from any thread,
 *     concurrently, and from inside callbacks. Sends and close only enqueue work for
 *     Tether's I/O thread: they never wait for the network and never run a callback
 *     themselves (only the TETHER_OVERFLOW_WAIT policy makes a send block, up to its
 *     timeout).
 *   - A client's callbacks run serially, one at a time, in event order: on a dispatcher
 *     thread owned by the client (TETHER_DISPATCH_THREAD, the default; never one of Tether's
 *     I/O threads, so a slow callback does not stall the network), or on the thread that
 *     calls tether_client_poll*() (TETHER_DISPATCH_POLL). Your user_data is used from that
 *     thread; make it safe to use there.
 *   - tether_client_poll*() must not be called from inside one of the same client's
 *     callbacks, nor by two threads at once: both return TETHER_ERR_REENTRANT (never a
 *     deadlock).
 *   - A tether_config is a builder: configure it from one thread; tether_client_new() may
 *     then use it from any thread (it is copied, and may be freed right after).
 *   - The log callback (tether_set_log_callback) is process-wide and may run on any thread.
 *   - Tether runs one small internal I/O runtime per process (1 thread by default:
 *     tether_runtime_set_worker_threads()), plus one dispatcher thread per client in
 *     callback mode. Do not fork() a process that has created a client and use Tether in
 *     the child.
 *
 * SHUTDOWN
 *   - tether_client_free() closes the client gracefully (code 1000: the outbox is drained,
 *     up to the close timeout), waits for the close (at most the close timeout + 2 s),
 *     joins the dispatcher thread, then runs user_data_free exactly once. Callbacks still
 *     due run during the close (on the dispatcher thread: on_send_failed for messages left
 *     undelivered, then on_closed), so the thread calling free must not hold a lock that
 *     your callbacks take. No callback runs after free returns.
 *   - Freeing from inside one of the client's own callbacks is allowed: free then does not
 *     wait; no further callback is called, and user_data_free runs as soon as the current
 *     callback returns.
 *   - In poll mode, events not yet polled when free is called are discarded. To observe
 *     the end (undelivered messages, on_closed) without blocking a game loop: call
 *     tether_client_close(), keep polling until on_closed, then free (it returns at once).
 *   - Do not free a client while other threads still use it. If it happens anyway, Tether
 *     stays memory-safe: a call in progress completes (free waits for it), and a later call
 *     on the freed handle returns TETHER_ERR_CLOSED or TETHER_ERR_INVALID_HANDLE.
 *   - tether_client_new() never runs a callback before *client_out is written, so passing
 *     the address of a field that your callbacks read is safe.
 *
 * CALLBACK DATA
 *   Pointers given to callbacks (message payloads, reason strings) are borrowed for the
 *   duration of the call only: copy what you need to keep. A callback must return normally:
 *   no C++ exception or longjmp may leave it.
 *
 * BUFFERS YOU PASS IN
 *   Every function copies what it needs before it returns (you may reuse or free your
 *   buffer at once), except tether_client_send_binary_owned(), which takes a binary
 *   message's buffer over without copying it. That buffer is always consumed, whatever the
 *   call returns: Tether calls your free_fn on it exactly once (on an error, before the call
 *   returns), from any thread; never free or write it yourself after the call.
 *
 * RAW AND ENVELOPE MODES
 *   Raw mode (default) talks to any WebSocket server; acks do not exist there: on_acked
 *   never fires and tether_client_wait_acked() returns TETHER_ERR_NOT_SUPPORTED. Envelope
 *   mode (tether_config_set_protocol) adds handshake, acks, resend and de-duplication; the
 *   server must speak docs/PROTOCOL.md.
 */


#ifndef TETHER_H
#define TETHER_H

/* Generated by cbindgen 0.29.4 from ffi/src. Do not edit: run ffi/gen-header.sh. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TETHER_VERSION_STRING is built from the numeric macros below, so it never goes stale. */
#define TETHER_VERSION_STRINGIFY_(x) #x
#define TETHER_VERSION_STRINGIFY(x) TETHER_VERSION_STRINGIFY_(x)
/** The version of this header as a string literal, e.g. "0.1.0" (see tether_version()). */
#define TETHER_VERSION_STRING TETHER_VERSION_STRINGIFY(TETHER_VERSION_MAJOR) "." \
TETHER_VERSION_STRINGIFY(TETHER_VERSION_MINOR) "." TETHER_VERSION_STRINGIFY(TETHER_VERSION_PATCH)

/**
 * Major version of the Tether C API this header describes.
 */
#define TETHER_VERSION_MAJOR 0

/**
 * Minor version of the Tether C API this header describes.
 */
#define TETHER_VERSION_MINOR 1

/**
 * Patch version of the Tether C API this header describes.
 */
#define TETHER_VERSION_PATCH 0

/**
 * `MAJOR * 10000 + MINOR * 100 + PATCH`, for `#if TETHER_VERSION_NUMBER >= ...`.
 */
#define TETHER_VERSION_NUMBER 100

/**
 * The result of every fallible call, and the kind of an asynchronous failure reported to
 * `on_error` and `on_send_failed`.
 *
 * The numbering is append-only: a value never changes meaning. `tether_status_str()` gives a
 * short static description; the client's or config's last-error message gives the details.
 */
typedef enum tether_status {
    /**
     * Success.
     */
    TETHER_OK = 0,
    /**
     * A required pointer parameter was NULL.
     */
    TETHER_ERR_NULL_PARAMETER = 1,
    /**
     * Tether hit a bug (a Rust panic), caught at the boundary. The handle stays usable.
     */
    TETHER_ERR_PANIC = 2,
    /**
     * An internal failure (the runtime or a thread could not start, ...); see the message.
     */
    TETHER_ERR_INTERNAL = 3,
    /**
     * The URL is not a usable `ws://` or `wss://` URL; the message says why.
     */
    TETHER_ERR_INVALID_URL = 4,
    /**
     * A config value is out of range or inconsistent (or TLS material is unreadable); the
     * message names the option.
     */
    TETHER_ERR_INVALID_CONFIG = 5,
    /**
     * The outbox is full (`TETHER_OVERFLOW_REJECT`, or the `TETHER_OVERFLOW_WAIT` timeout
     * expired). Nothing was queued.
     */
    TETHER_ERR_QUEUE_FULL = 6,
    /**
     * A message is larger than the configured limit (outbound: nothing was queued; inbound:
     * the link was closed with 1009). As an `on_send_failed` status: the server closed the
     * link with 1009 three times while this message was the largest in flight.
     */
    TETHER_ERR_TOO_LARGE = 7,
    /**
     * The client is closed or closing (or being freed): it accepts no more messages.
     */
    TETHER_ERR_CLOSED = 8,
    /**
     * The link is not ready and queueing while disconnected is off. Nothing was queued.
     */
    TETHER_ERR_NOT_READY = 9,
    /**
     * The operation needs a mode this client does not run in: acks in raw mode.
     */
    TETHER_ERR_NOT_SUPPORTED = 10,
    /**
     * An argument is invalid (text that is not UTF-8, a close code that may not be sent, an
     * unknown enum value, an unknown message id, ...); the message says which.
     */
    TETHER_ERR_INVALID_ARGUMENT = 11,
    /**
     * The handle is not a live `tether_client` / `tether_config`: it was freed, or never was
     * one. (Detected on a best-effort basis; using a freed handle is a bug.)
     */
    TETHER_ERR_INVALID_HANDLE = 12,
    /**
     * `tether_client_poll*` on a client in callback (dispatcher-thread) mode.
     */
    TETHER_ERR_WRONG_MODE = 13,
    /**
     * `tether_client_poll*` called from inside one of the same client's callbacks, or while
     * another thread is polling the same client; or `tether_set_log_callback` from inside
     * the log callback.
     */
    TETHER_ERR_REENTRANT = 14,
    /**
     * A bounded wait ended before the awaited thing happened.
     */
    TETHER_ERR_TIMEOUT = 15,
    /**
     * The caller's buffer is too small; a truncated, NUL-terminated copy was written and
     * `*needed_out` holds the size required.
     */
    TETHER_ERR_BUFFER_TOO_SMALL = 16,
    /**
     * The call is not possible any more (the runtime already started; another tracing
     * subscriber is already installed in the process).
     */
    TETHER_ERR_INVALID_STATE = 17,
    /**
     * Asynchronous: a connection attempt failed (refused, DNS, TLS, HTTP status, timeout).
     */
    TETHER_ERR_CONNECT_FAILED = 18,
    /**
     * Asynchronous: the link broke without a close frame, or the server closed it with a
     * code that is not a normal end (anything but 1000 and 1001; `on_close` has the code).
     */
    TETHER_ERR_CONNECTION_LOST = 19,
    /**
     * Asynchronous: nothing arrived within the heartbeat deadline; the link was dropped.
     */
    TETHER_ERR_HEARTBEAT_TIMEOUT = 20,
    /**
     * Asynchronous: the server violated the WebSocket protocol (for example invalid UTF-8
     * in a text message: closed with 1007).
     */
    TETHER_ERR_PROTOCOL = 21,
    /**
     * Asynchronous, envelope mode: the application handshake failed or timed out.
     */
    TETHER_ERR_HANDSHAKE = 22,
    /**
     * Asynchronous, envelope mode: the server rejected the session or a message.
     */
    TETHER_ERR_REJECTED = 23,
    /**
     * Asynchronous: reconnecting stopped because the attempt or time limit ran out.
     */
    TETHER_ERR_RETRIES_EXHAUSTED = 24,
    /**
     * Asynchronous: the connection ended for good with the message undelivered.
     */
    TETHER_ERR_CONNECTION_FAILED = 25,
    /**
     * Asynchronous: the message was dropped from a full outbox (drop-oldest policy).
     */
    TETHER_ERR_DROPPED = 26,
    /**
     * Asynchronous, envelope mode: no ack after the configured attempts.
     */
    TETHER_ERR_ACK_TIMEOUT = 27,
    /**
     * Asynchronous, envelope mode: an inbound frame was refused (bad signature, malformed
     * envelope) and not delivered; the link stays up.
     */
    TETHER_ERR_INBOUND_REJECTED = 28,
    /**
     * Asynchronous: a connection attempt failed at the proxy (it refused the tunnel, e.g.
     * HTTP 407, or did not speak its protocol); the message names the proxy and its answer.
     */
    TETHER_ERR_PROXY = 29,
    /**
     * Asynchronous: the credentials provider failed (returned non-OK, or misbehaved), so
     * the attempt was not made; it is retried with backoff. The message has its text.
     */
    TETHER_ERR_CREDENTIALS = 30,
    /**
     * The persistent outbox file (`tether_config_set_outbox_path`) could not be opened, read
     * or written: from `tether_client_new` (a damaged file, one of another session or mode, a
     * newer format, a file another live client holds) or `tether_client_send_*` (nothing was
     * queued). The message names the file and the reason.
     */
    TETHER_ERR_STORAGE = 31,
    /**
     * As an `on_send_failed` status: the client ended before the message was delivered, and
     * it stays in the persistent outbox file for the next client started with that file.
     */
    TETHER_ERR_KEPT = 32,
} tether_status;

/**
 * Connection states (the values never change; see `tether_state_str`).
 */
typedef enum tether_state {
    /**
     * Making a connection (TCP, TLS, HTTP upgrade), first time or after a backoff delay.
     */
    TETHER_STATE_CONNECTING = 0,
    /**
     * The WebSocket is open; the application handshake (envelope mode) is running.
     */
    TETHER_STATE_OPEN = 1,
    /**
     * Ready: queued messages flow. In raw mode this follows OPEN at once.
     */
    TETHER_STATE_READY = 2,
    /**
     * `tether_client_close` was called: draining the outbox and closing; or reconnecting
     * stopped and what is left is being failed before `TETHER_STATE_CLOSED`.
     */
    TETHER_STATE_CLOSING = 3,
    /**
     * Terminal: the client will not connect again.
     */
    TETHER_STATE_CLOSED = 4,
    /**
     * The link is down; waiting out the backoff delay before the next attempt.
     */
    TETHER_STATE_RECONNECTING = 5,
} tether_state;

/**
 * Kind of an inbound message.
 */
typedef enum tether_message_type {
    /**
     * A text message: the bytes are valid UTF-8 (not NUL-terminated).
     */
    TETHER_MESSAGE_TEXT = 1,
    /**
     * A binary message.
     */
    TETHER_MESSAGE_BINARY = 2,
} tether_message_type;

/**
 * Where one sent message stands (`tether_client_delivery_status`).
 */
typedef enum tether_delivery {
    /**
     * Not an id this client issued, or too old to remember.
     */
    TETHER_DELIVERY_UNKNOWN = 0,
    /**
     * Waiting in the outbox.
     */
    TETHER_DELIVERY_QUEUED = 1,
    /**
     * Written to the socket (envelope mode: awaiting the ack).
     */
    TETHER_DELIVERY_WRITTEN = 2,
    /**
     * Acknowledged by the server (envelope mode).
     */
    TETHER_DELIVERY_ACKED = 3,
    /**
     * Will never be delivered (`on_send_failed` tells why).
     */
    TETHER_DELIVERY_FAILED = 4,
} tether_delivery;

/**
 * Severity of a log record (and the `max_level` filter of `tether_set_log_callback`).
 */
typedef enum tether_log_level {
    /**
     * No records (as a filter).
     */
    TETHER_LOG_OFF = 0,
    /**
     * Errors.
     */
    TETHER_LOG_ERROR = 1,
    /**
     * Warnings (disconnects, missed heartbeats, ...).
     */
    TETHER_LOG_WARN = 2,
    /**
     * Informational (connected, reconnecting, closed).
     */
    TETHER_LOG_INFO = 3,
    /**
     * Debugging (state changes, ...).
     */
    TETHER_LOG_DEBUG = 4,
    /**
     * Very detailed.
     */
    TETHER_LOG_TRACE = 5,
} tether_log_level;

/**
 * How a client delivers its callbacks.
 */
typedef enum tether_dispatch {
    /**
     * Default: a dispatcher thread owned by the client runs the callbacks.
     */
    TETHER_DISPATCH_THREAD = 0,
    /**
     * The application calls `tether_client_poll*`, which runs the callbacks on its thread.
     */
    TETHER_DISPATCH_POLL = 1,
} tether_dispatch;

/**
 * What `tether_client_send_*` does when the outbox is full.
 */
typedef enum tether_overflow {
    /**
     * Default: refuse the new message with `TETHER_ERR_QUEUE_FULL`.
     */
    TETHER_OVERFLOW_REJECT = 0,
    /**
     * Block the sending thread until there is room, up to a timeout, then
     * `TETHER_ERR_QUEUE_FULL`. (Do not use with sends from inside callbacks.)
     */
    TETHER_OVERFLOW_WAIT = 1,
    /**
     * Accept the new message and drop the oldest queued one, which gets `on_send_failed`
     * with `TETHER_ERR_DROPPED`.
     */
    TETHER_OVERFLOW_DROP_OLDEST = 2,
} tether_overflow;

/**
 * Which certificate authorities `wss://` trusts (unless a CA file or PEM is set).
 */
typedef enum tether_tls_roots {
    /**
     * Default: the operating system's trust store, falling back to the bundled Mozilla roots.
     */
    TETHER_TLS_ROOTS_SYSTEM = 0,
    /**
     * The bundled Mozilla root set: the same on every machine.
     */
    TETHER_TLS_ROOTS_WEBPKI = 1,
} tether_tls_roots;

/**
 * What the client speaks on top of WebSocket.
 */
typedef enum tether_protocol {
    /**
     * Default: bare WebSocket messages, to any server. No acks (`on_acked` never fires,
     * `tether_client_wait_acked` gives `TETHER_ERR_NOT_SUPPORTED`).
     */
    TETHER_PROTOCOL_RAW = 0,
    /**
     * The Tether envelope (docs/PROTOCOL.md): handshake, acks, resend, de-duplication,
     * optional signatures and compression. The server must speak it.
     */
    TETHER_PROTOCOL_ENVELOPE = 1,
} tether_protocol;

/**
 * What the persistent outbox (`tether_config_set_outbox_path`) makes durable against a machine
 * crash; a killed process loses nothing in any mode.
 */
typedef enum tether_outbox_sync {
    /**
     * No fdatasync: the OS writes the file back in its own time.
     */
    TETHER_OUTBOX_SYNC_NONE = 0,
    /**
     * Default: one fdatasync per batch, before the batch goes on the wire.
     */
    TETHER_OUTBOX_SYNC_BATCH = 1,
    /**
     * One fdatasync per message, before `tether_client_send*` returns its id.
     */
    TETHER_OUTBOX_SYNC_ALWAYS = 2,
} tether_outbox_sync;

/**
 * Which thread runs a client's I/O (`tether_config_set_io_driver`).
 */
typedef enum tether_io_driver {
    /**
     * Default: Tether's shared runtime thread.
     */
    TETHER_IO_DRIVER_RUNTIME = 0,
    /**
     * The application's thread while it waits on the client (poll dispatch only), with a
     * keeper thread when nobody waits (`tether_config_set_keeper_after_ms`).
     */
    TETHER_IO_DRIVER_CALLER = 1,
} tether_io_driver;

/**
 * Which text `tether_client_connection_info` copies.
 */
typedef enum tether_info {
    /**
     * The subprotocol the server chose; empty if none.
     */
    TETHER_INFO_SUBPROTOCOL = 0,
    /**
     * The name of the 101 answer's header at `index` (lower case).
     */
    TETHER_INFO_HEADER_NAME = 1,
    /**
     * The value of the 101 answer's header at `index`.
     */
    TETHER_INFO_HEADER_VALUE = 2,
    /**
     * The proxy the connection went through (`host:port`); empty if none.
     */
    TETHER_INFO_PROXY = 3,
    /**
     * The TCP peer (`ip:port`: the server, or the proxy); empty if unknown.
     */
    TETHER_INFO_PEER = 4,
} tether_info;

/**
 * A resilient WebSocket client (opaque). Create with `tether_client_new`, free with
 * `tether_client_free`. The pointer is a handle, not an address: never dereference it.
 */
typedef struct tether_client tether_client;

/**
 * A client configuration under construction (opaque). Create with `tether_config_new`, free
 * with `tether_config_free`. Not consumed by `tether_client_new`: one config can create
 * several clients, and may be freed as soon as `tether_client_new` returned.
 */
typedef struct tether_config tether_config;

/**
 * The credentials of one connect attempt, being filled by a `tether_credentials_provider`
 * (opaque). Valid only during that call: never keep it.
 */
typedef struct tether_credentials tether_credentials;

/**
 * Envelope mode: a side of the session lost its state (see `on_session_reset` and
 * docs/PROTOCOL.md, "Epochs"). An id range is `first..=last`; `first == 0` means "none".
 */
typedef struct tether_session_reset {
    /**
     * The server's session state is gone (it restarted or evicted the session): its messages
     * are numbered anew from here on, and delivered.
     */
    bool server_lost_state;
    /**
     * The server held this session id for an earlier client incarnation (a restarted process
     * reusing its session id): that incarnation's unacknowledged messages are gone.
     */
    bool client_state_lost;
    /**
     * The server's messages from here on may repeat ones an earlier incarnation received.
     */
    bool inbound_may_repeat;
    /**
     * Ids reported `on_acked` that the server no longer remembers (0, 0: none): whether their
     * effects survive is up to the server's application.
     */
    uint64_t acked_at_risk_first;
    /**
     * Last id of `acked_at_risk` (inclusive).
     */
    uint64_t acked_at_risk_last;
    /**
     * Unacknowledged ids about to be written again that had been written before (0, 0: none):
     * the server's application may see them twice.
     */
    uint64_t resends_may_duplicate_first;
    /**
     * Last id of `resends_may_duplicate` (inclusive).
     */
    uint64_t resends_may_duplicate_last;
    /**
     * Session revision of the server (1: an old server, found out because it forgot an ack;
     * 2: stream epochs).
     */
    uint32_t server_revision;
} tether_session_reset;

/**
 * What the client tells the application. Every callback may be NULL ("not interested").
 * Initialise the struct with `TETHER_CALLBACKS_INIT` (C: `tether_callbacks cb =
 * TETHER_CALLBACKS_INIT;`) or `tether_callbacks_init(&cb)`, which zero it and set
 * `struct_size`, then set the callbacks you need; `tether_client_new` copies it.
 *
 * All callbacks of one client run serially, never concurrently with each other: on the
 * client's dispatcher thread (`TETHER_DISPATCH_THREAD`) or inside `tether_client_poll*` on
 * the polling thread (`TETHER_DISPATCH_POLL`). They receive the `user_data` given to
 * `tether_client_new`. Pointers passed to a callback (payloads, strings) are borrowed for
 * the duration of the call only: copy what you keep. Strings are NUL-terminated UTF-8.
 * A callback may call `tether_client_send_*`, `_close`, `_state`, `_stats`, `_last_error`
 * and even `tether_client_free` on its own client; it must not throw a C++ exception or
 * `longjmp` out.
 */
typedef struct tether_callbacks {
    /**
     * `sizeof(tether_callbacks)` as your program was compiled (set by `TETHER_CALLBACKS_INIT`
     * and `tether_callbacks_init`). The library reads only the callbacks that fit in it and
     * treats the rest as NULL, so a program built against an older, shorter struct keeps
     * working on a newer library. A size smaller than the first version's callbacks (through
     * `on_closed`; 0 included) is refused with `TETHER_ERR_INVALID_ARGUMENT`.
     */
    size_t struct_size;
    /**
     * Every state change, `from` -> `to` (called before `on_open` / `on_ready`).
     */
    void (*on_state)(void *user_data, enum tether_state from, enum tether_state to);
    /**
     * The WebSocket opened (each time, reconnects included).
     */
    void (*on_open)(void *user_data);
    /**
     * The link is ready: queued messages flow (each time, reconnects included).
     */
    void (*on_ready)(void *user_data);
    /**
     * A message from the server: `len` bytes at `data` (never NULL, even when `len` is 0;
     * not NUL-terminated), text (UTF-8) or binary.
     */
    void (*on_message)(void *user_data, const uint8_t *data, size_t len, enum tether_message_type kind);
    /**
     * A link ended. `code` is the close code exchanged, or 1006 if the link broke without
     * one (or never opened); `reason` is the close frame's reason, or a description of the
     * failure. `will_reconnect` tells whether the client will try again (`on_reconnecting`
     * follows). Abnormal ends are first reported to `on_error`.
     */
    void (*on_close)(void *user_data, uint16_t code, const char *reason, bool will_reconnect);
    /**
     * A reconnect attempt (`attempt` from 1 in each outage) starts after `delay_ms`.
     */
    void (*on_reconnecting)(void *user_data, uint32_t attempt, uint64_t delay_ms);
    /**
     * Every accepted message with an id up to and including `up_to` (that has not failed)
     * has been written to the socket. Cumulative; consecutive reports may coalesce.
     */
    void (*on_written)(void *user_data, uint64_t up_to);
    /**
     * Envelope mode: the server acknowledged message `id` (once per message). Never called
     * in raw mode.
     */
    void (*on_acked)(void *user_data, uint64_t id);
    /**
     * Message `id` will never be delivered (exactly once per failed message): `status` says
     * why (`TETHER_ERR_CLOSED`, `_DROPPED`, `_CONNECTION_FAILED`, `_ACK_TIMEOUT`,
     * `_REJECTED`), `reason` in words.
     */
    void (*on_send_failed)(void *user_data, uint64_t id, enum tether_status status, const char *reason);
    /**
     * An asynchronous failure not tied to one message: a failed connect attempt, a lost
     * link, a heartbeat timeout, a protocol error, an oversized inbound message, a refused
     * inbound envelope, reconnecting given up. `status` is the kind, `message` the details.
     */
    void (*on_error)(void *user_data, enum tether_status status, const char *message);
    /**
     * The client is closed for good: always the last callback (before `user_data_free`).
     * `undelivered` messages never went out (each got `on_send_failed`).
     */
    void (*on_closed)(void *user_data, uint16_t code, const char *reason, size_t undelivered);
    /**
     * Envelope mode: a side of the session lost its state (the server restarted, or this
     * process reuses the session id of an earlier one): where the delivery guarantee has a
     * boundary, in `reset` (borrowed for the call). Called right before the `on_ready` of the
     * link that found out. (Added after the first version of the struct: with a
     * `struct_size` that ends before it, it reads as NULL.)
     */
    void (*on_session_reset)(void *user_data, const struct tether_session_reset *reset);
} tether_callbacks;

/**
 * Finalizer for `user_data`, run exactly once by `tether_client_free` after the last
 * callback (never if `tether_client_new` fails: the caller keeps ownership then).
 */
typedef void (*tether_user_data_free)(void *user_data);

/**
 * Releases a buffer handed over with `tether_client_send_binary_owned`: called with the
 * `free_ctx`, `data` and `len` given to that call, exactly once. It may run on any thread
 * (yours, inside the send call; one of Tether's I/O threads; another thread sending on the
 * same client), concurrently with your other code and with other release calls. It must
 * return normally (no C++ exception, no `longjmp`), should be quick, and must not call any
 * `tether_` function (Tether may hold a client's internal lock while it runs).
 */
typedef void (*tether_buffer_free)(void *free_ctx, uint8_t *data, size_t len);

/**
 * A snapshot of a client's counters (`tether_client_stats`). Fields are only ever appended.
 * Initialise it with `TETHER_STATS_INIT` or `tether_stats_init(&stats)` (they set
 * `struct_size`) before passing it.
 */
typedef struct tether_stats {
    /**
     * `sizeof(tether_stats)` as your program was compiled (set by `TETHER_STATS_INIT` and
     * `tether_stats_init`). The library writes only the fields that fit in it, so a program
     * built against an older, shorter struct is never overflowed by a newer library. A size
     * smaller than the first version's fields (0 included) is refused with
     * `TETHER_ERR_INVALID_ARGUMENT`. Left as it is by `tether_client_stats`.
     */
    size_t struct_size;
    /**
     * Messages written and flushed to the socket.
     */
    uint64_t messages_sent;
    /**
     * Payload bytes written and flushed.
     */
    uint64_t bytes_sent;
    /**
     * Data messages received.
     */
    uint64_t messages_received;
    /**
     * Payload bytes received.
     */
    uint64_t bytes_received;
    /**
     * Successful reconnects (opens after the first).
     */
    uint64_t reconnects;
    /**
     * Messages reported with `on_send_failed`.
     */
    uint64_t send_failures;
    /**
     * Envelope mode: messages acknowledged by the server.
     */
    uint64_t messages_acked;
    /**
     * Messages written again (after a reconnect or an ack timeout).
     */
    uint64_t messages_resent;
    /**
     * Envelope mode: inbound duplicates dropped.
     */
    uint64_t duplicates_dropped;
    /**
     * Envelope mode: inbound frames refused (bad signature, malformed).
     */
    uint64_t inbound_rejected;
    /**
     * Envelope mode: messages written and awaiting their ack now.
     */
    uint64_t awaiting_ack;
    /**
     * Messages in the outbox now (including those being written).
     */
    uint64_t outbox_messages;
    /**
     * Bytes in the outbox now.
     */
    uint64_t outbox_bytes;
    /**
     * Highest outbox depth seen, in messages.
     */
    uint64_t outbox_high_water_messages;
    /**
     * Highest outbox depth seen, in bytes.
     */
    uint64_t outbox_high_water_bytes;
    /**
     * Round-trip time of the last answered WebSocket ping, in microseconds; 0 if none yet.
     */
    uint64_t last_rtt_us;
    /**
     * Envelope mode: round-trip time of the last app-level ping, in microseconds; 0 if none.
     */
    uint64_t last_app_rtt_us;
} tether_stats;

/**
 * A log callback: `level`, `target` (the Rust module, e.g. "tether_core::session") and
 * `message` (the text and its fields, e.g. `disconnected reason=...`) are NUL-terminated and
 * borrowed for the call only.
 */
typedef void (*tether_log_callback)(void *user_data, enum tether_log_level level, const char *target, const char *message);

/**
 * Called before every connect attempt (the first, `attempt` 0, and each reconnect, `attempt`
 * from 1 in each outage; `reconnect` tells whether a connection was up before) on one of
 * Tether's threads, never twice at once for one client; it may block (the time counts
 * against the connect timeout). It fills `credentials` with `tether_credentials_add_header`
 * (a header replaces a configured one of the same name, for this attempt) and
 * `tether_credentials_set_token` (envelope mode: the `hello` token), and returns `TETHER_OK`;
 * any other value fails the attempt (`on_error` with `TETHER_ERR_CREDENTIALS`, then retried
 * with backoff), with the text of `tether_credentials_set_error` if it was called.
 */
typedef int (*tether_credentials_provider)(void *user_data, uint32_t attempt, bool reconnect, struct tether_credentials *credentials);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The state's name ("connecting", "open", "ready", "closing", "closed", "reconnecting"), or
 * "unknown". Takes an `int` so any value is safe. Static; never NULL; do not free.
 *
 * Ownership: returns a static string: never NULL, do not free.
 * Threads: any thread.
 * Errors: none: an unknown value gives "unknown".
 */
const char *tether_state_str(int state);

/**
 * Create a client and start connecting in the background (this call does not block on the
 * network). On success `*client_out` receives the handle, and from then on the callbacks
 * run (never before `*client_out` is written, so it is safe to pass the address of a field
 * your callbacks read). `callbacks` is copied; `user_data` is passed to every callback, and
 * `user_data_free` (may be NULL) runs exactly once, in `tether_client_free`, after the last
 * callback.
 *
 * Ownership: borrows `config` (it may be freed right after); copies `*callbacks` (its
 * `struct_size` bytes); `user_data` stays yours until `user_data_free` runs in
 * `tether_client_free` (never if this call fails); the client written to `*client_out` is yours:
 * free it with `tether_client_free`.
 * Threads: any thread; not concurrently with a setter on the same config. The client's callbacks
 * then run on its dispatcher thread or the polling thread, never on the thread of this call before
 * it returns.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config`, `callbacks` or `client_out`),
 * `TETHER_ERR_INVALID_HANDLE` (a freed config), `TETHER_ERR_INVALID_ARGUMENT`
 * (`callbacks->struct_size` 0 or below the first version of the struct), `TETHER_ERR_INVALID_URL`
 * / `TETHER_ERR_INVALID_CONFIG`, `TETHER_ERR_INTERNAL`; the reason is in
 * `tether_config_last_error(config)`. On failure nothing was created and `user_data_free` is not
 * called.
 */
enum tether_status tether_client_new(const struct tether_config *config, const struct tether_callbacks *callbacks, void *user_data, tether_user_data_free user_data_free, struct tether_client **client_out);

/**
 * Close the client and release it. NULL and already-freed handles are ignored.
 *
 * From any thread other than the client's callbacks: starts a graceful close (code 1000)
 * if none is under way, waits for it (at most the close timeout plus 2 s), joins the
 * dispatcher thread, then runs `user_data_free`. Callbacks still due run during the close
 * (on the dispatcher thread: `on_send_failed` for undelivered messages, then `on_closed`);
 * none runs after this returns. In poll mode, events not yet polled are discarded (to see
 * them: `tether_client_close`, poll until `on_closed`, then free).
 *
 * From inside one of this client's callbacks: does not wait; starts the close, no further
 * callback is called, and `user_data_free` runs right after the current callback returns.
 *
 * Calls racing with free on other threads are safe: they complete, or fail with
 * `TETHER_ERR_CLOSED` / `TETHER_ERR_INVALID_HANDLE`; free waits for calls in progress
 * (`tether_client_wait_acked` or a `TETHER_OVERFLOW_WAIT` send may make it wait up to their
 * timeout).
 *
 * Ownership: consumes the handle (invalid afterwards: later calls get
 * `TETHER_ERR_INVALID_HANDLE`); runs `user_data_free` exactly once.
 * Threads: any thread, including from inside one of the client's own callbacks (then it does not
 * wait); from elsewhere it blocks for the close, so do not hold a lock your callbacks take.
 * Errors: none: NULL and already-freed handles are ignored.
 */
void tether_client_free(struct tether_client *client);

/**
 * Queue a text message of `len` bytes of UTF-8 at `text` (not necessarily NUL-terminated;
 * may be NULL when `len` is 0). The bytes are copied before this returns. On success
 * `*id_out` (may be NULL) receives the message id (1, 2, 3... in send order); the message's
 * fate is reported later by `on_written` / `on_acked` or `on_send_failed`.
 *
 * Ownership: `text` is borrowed for the call only (copied before it returns); `*id_out` is written
 * on success.
 * Threads: any thread, concurrently, and from inside callbacks. Never blocks, except with
 * `TETHER_OVERFLOW_WAIT` (up to its timeout); never runs a callback itself.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or the data NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8), `TETHER_ERR_TOO_LARGE`,
 * `TETHER_ERR_QUEUE_FULL`, `TETHER_ERR_NOT_READY`, `TETHER_ERR_CLOSED`; nothing was queued, the
 * reason is in `tether_client_last_error`.
 */
enum tether_status tether_client_send_text(struct tether_client *client, const char *text, size_t len, uint64_t *id_out);

/**
 * Queue a binary message of `len` bytes at `data` (may be NULL when `len` is 0). Same
 * contract as `tether_client_send_text`, without the UTF-8 check. The bytes are copied; to
 * hand over a large buffer without a copy, see `tether_client_send_binary_owned`.
 *
 * Ownership: `data` is borrowed for the call only (copied before it returns); `*id_out` is written
 * on success.
 * Threads: any thread, concurrently, and from inside callbacks. Never blocks, except with
 * `TETHER_OVERFLOW_WAIT` (up to its timeout); never runs a callback itself.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or the data NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_TOO_LARGE`, `TETHER_ERR_QUEUE_FULL`,
 * `TETHER_ERR_NOT_READY`, `TETHER_ERR_CLOSED`; nothing was queued, the reason is in
 * `tether_client_last_error`.
 */
enum tether_status tether_client_send_binary(struct tether_client *client, const uint8_t *data, size_t len, uint64_t *id_out);

/**
 * Queue a binary message of `len` bytes at `data` without copying them: Tether takes the
 * buffer over and writes from it directly. Worth it for large messages (several KiB and
 * up); for small ones the copy costs little and `tether_client_send_binary` needs no
 * release function.
 *
 * **The buffer is always consumed, whatever this returns.** From the call on it belongs to
 * Tether: do not write to it or free it yourself. Tether calls `free_fn(free_ctx, data,
 * len)` exactly once, when it no longer needs the bytes:
 * - on `TETHER_OK`, after the message was written (raw mode) or acknowledged (envelope
 *   mode), or once it failed (`on_send_failed`), or when the client's session ends (which
 *   may be after `tether_client_free` returns, if the close timed out); possibly before this
 *   call returns, and on any thread (see `tether_buffer_free`);
 * - on any error (`TETHER_ERR_NULL_PARAMETER` for a NULL `client`, or `data` NULL with a
 *   non-zero `len`; `_INVALID_HANDLE`; `_TOO_LARGE`; `_QUEUE_FULL`; `_NOT_READY`; `_CLOSED`),
 *   before this call returns, on the calling thread: nothing was queued. Even
 *   `TETHER_ERR_PANIC` (a bug in Tether) releases it, at the latest when the session ends.
 *
 * So the caller never frees the buffer after handing it over, on any path; to retry after
 * `TETHER_ERR_QUEUE_FULL`, fill a buffer again (a `free_fn` that returns buffers to a pool
 * makes that cheap). If the process exits while messages are still queued, their `free_fn`
 * is not called.
 *
 * `free_fn` may be NULL: the bytes are then never released and must stay valid and
 * unchanged for the rest of the process (static data, such as a constant table or a string
 * literal); `free_ctx` is ignored. `data` may be NULL when `len` is 0 (`free_fn` still runs,
 * with NULL). Reading the buffer while Tether owns it is fine. On success `*id_out` (may be
 * NULL) receives the message id; the message's fate is reported as for
 * `tether_client_send_text`. Thread-safe; callable from callbacks.
 *
 * Ownership: takes `data` over on every path, errors included: `free_fn(free_ctx, data, len)` runs
 * exactly once (see above); `*id_out` is written on success.
 * Threads: any thread, concurrently, and from inside callbacks. Never blocks, except with
 * `TETHER_OVERFLOW_WAIT` (up to its timeout); never runs a callback itself. `free_fn` may run on
 * any thread.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or `data` NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_TOO_LARGE`, `TETHER_ERR_QUEUE_FULL`,
 * `TETHER_ERR_NOT_READY`, `TETHER_ERR_CLOSED`; nothing was queued and the buffer is released
 * before the call returns.
 */
enum tether_status tether_client_send_binary_owned(struct tether_client *client, uint8_t *data, size_t len, tether_buffer_free free_fn, void *free_ctx, uint64_t *id_out);

/**
 * Start a graceful close: refuse new sends, drain the outbox (up to the close timeout),
 * send a close frame with `code` (1000 or 3000-4999) and `reason` (NUL-terminated UTF-8, at
 * most 123 bytes; NULL means empty), wait for the server's. Returns at once; the end is
 * reported by `on_closed` (after `on_send_failed` for each message left). Closing again is a
 * no-op.
 *
 * Ownership: `reason` is borrowed for the call only (copied).
 * Threads: any thread, concurrently, and from inside callbacks. Returns at once (never waits for
 * the network).
 * Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_INVALID_ARGUMENT`
 * (code or reason), `TETHER_ERR_CLOSED` (being freed); the reason in `tether_client_last_error`.
 */
enum tether_status tether_client_close(struct tether_client *client, uint16_t code, const char *reason);

/**
 * The current state.
 *
 * Ownership: borrows the handle only.
 * Threads: any thread, concurrently, and from inside callbacks.
 * Errors: none: a NULL or freed handle reads as `TETHER_STATE_CLOSED`.
 */
enum tether_state tether_client_state(const struct tether_client *client);

/**
 * Write a snapshot of the counters to `*stats_out`.
 *
 * Ownership: writes your `*stats_out`, only its first `struct_size` bytes (`struct_size` itself is
 * left as you set it).
 * Threads: any thread, concurrently, and from inside callbacks.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`client` or `stats_out`), `TETHER_ERR_INVALID_HANDLE`,
 * `TETHER_ERR_INVALID_ARGUMENT` (`stats_out->struct_size` 0 or below the first version of the
 * struct: nothing written), `TETHER_ERR_CLOSED` (being freed); the reason in
 * `tether_client_last_error`.
 */
enum tether_status tether_client_stats(const struct tether_client *client, struct tether_stats *stats_out);

/**
 * Copy the message of the last failed call on this client into `buf` (`len` bytes) as a
 * NUL-terminated UTF-8 string; empty if no call failed yet. The message is stored per
 * client (not per thread); calls that succeed leave it unchanged, and with several threads
 * failing at once it is one of their messages. `*needed_out` (may be NULL) receives the
 * buffer size that holds all of it, NUL included. Returns `TETHER_OK`, or
 * `TETHER_ERR_BUFFER_TOO_SMALL` with a truncated (still NUL-terminated, unless `len` is 0)
 * copy; `buf` may be NULL when `len` is 0 (a size query).
 *
 * Ownership: copies into your `buf`; the stored message stays the client's.
 * Threads: any thread, concurrently, and from inside callbacks.
 * Errors: `TETHER_ERR_BUFFER_TOO_SMALL` (a truncated copy, `*needed_out` set),
 * `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or `buf` NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE`.
 */
enum tether_status tether_client_last_error(const struct tether_client *client, char *buf, size_t len, size_t *needed_out);

/**
 * Poll mode: run the callbacks of up to `max_events` pending events on this thread, without
 * waiting (0 means all the events pending now; events arriving meanwhile wait for the next
 * call). `*ran_out` (may be NULL) receives the number of events handled (an event whose
 * callback is NULL counts too). Cheap when nothing is pending. If a callback frees the
 * client, the call returns `TETHER_OK` right after that callback, and the events it had
 * already taken are discarded.
 *
 * Ownership: borrows the handle; what a callback receives is borrowed for that call only.
 * Threads: the calling thread runs the callbacks; one poller at a time per client, never from
 * inside its own callbacks. Does not wait.
 * Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_WRONG_MODE` (a
 * callback-mode client), `TETHER_ERR_REENTRANT` (called from inside one of this client's
 * callbacks, or while another thread polls it); the reason in `tether_client_last_error`.
 */
enum tether_status tether_client_poll(struct tether_client *client, size_t max_events, size_t *ran_out);

/**
 * Poll mode: like `tether_client_poll`, but if no event is pending, wait up to `timeout_ms`
 * for the first one (then handle it and, with `max_events` 0, all that are pending by then).
 * Returns `TETHER_OK` (with `*ran_out` 0 if none came).
 *
 * Ownership: borrows the handle; what a callback receives is borrowed for that call only.
 * Threads: the calling thread runs the callbacks; one poller at a time per client, never from
 * inside its own callbacks. Blocks up to `timeout_ms` when nothing is pending.
 * Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_WRONG_MODE` (a
 * callback-mode client), `TETHER_ERR_REENTRANT` (called from inside one of this client's
 * callbacks, or while another thread polls it); the reason in `tether_client_last_error`.
 */
enum tether_status tether_client_poll_timeout(struct tether_client *client, size_t max_events, uint64_t timeout_ms, size_t *ran_out);

/**
 * Wait up to `timeout_ms` until the client is closed (after `tether_client_close`, or when
 * reconnecting stopped for good): `TETHER_OK`, or `TETHER_ERR_TIMEOUT`. In callback mode
 * `on_closed` may still be about to run on the dispatcher thread when this returns.
 *
 * Ownership: borrows the handle only.
 * Threads: any thread; blocks up to `timeout_ms` (from inside a callback it holds up the client's
 * other callbacks).
 * Errors: `TETHER_ERR_TIMEOUT`, `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`,
 * `TETHER_ERR_CLOSED` (being freed).
 */
enum tether_status tether_client_wait_closed(const struct tether_client *client, uint64_t timeout_ms);

/**
 * Envelope mode: block until the server acknowledges message `id` (`TETHER_OK`), the
 * message fails (its `on_send_failed` status, e.g. `TETHER_ERR_ACK_TIMEOUT`), or
 * `timeout_ms` passes (`TETHER_ERR_TIMEOUT`; the message is still pending). Raw mode:
 * `TETHER_ERR_NOT_SUPPORTED`. Unknown id: `TETHER_ERR_INVALID_ARGUMENT`. Blocking: avoid
 * calling it from a callback (it would hold up the other callbacks).
 *
 * Ownership: borrows the handle only.
 * Threads: any thread; blocks up to `timeout_ms` (from inside a callback it holds up the client's
 * other callbacks).
 * Errors: `TETHER_ERR_TIMEOUT` (still pending), the message's `on_send_failed` status
 * (`TETHER_ERR_ACK_TIMEOUT`, `_CLOSED`, `_DROPPED`, `_CONNECTION_FAILED`, `_REJECTED`),
 * `TETHER_ERR_NOT_SUPPORTED` (raw mode), `TETHER_ERR_INVALID_ARGUMENT` (an unknown id),
 * `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`.
 */
enum tether_status tether_client_wait_acked(const struct tether_client *client, uint64_t id, uint64_t timeout_ms);

/**
 * Where message `id` stands now, written to `*delivery_out` (a `tether_delivery`). Never
 * blocks.
 *
 * Ownership: writes your `*delivery_out` on success.
 * Threads: any thread, concurrently, and from inside callbacks.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`client` or `delivery_out`), `TETHER_ERR_INVALID_HANDLE`,
 * `TETHER_ERR_CLOSED` (being freed).
 */
enum tether_status tether_client_delivery_status(const struct tether_client *client, uint64_t id, enum tether_delivery *delivery_out);

/**
 * A new config with Tether's defaults (those of the Rust core) and no URL yet. Returns NULL
 * only if Tether itself failed (a bug). Free with `tether_config_free`.
 *
 * Ownership: the config is yours: free it with `tether_config_free` (clients copy it, so it may be
 * freed right after `tether_client_new`).
 * Threads: any thread.
 * Errors: none: returns NULL only if Tether itself failed (a bug, or too many live configs).
 */
struct tether_config *tether_config_new(void);

/**
 * Free a config. NULL and already-freed configs are ignored. Clients created from it are
 * not affected.
 *
 * Ownership: consumes the handle (invalid afterwards); clients made from it keep their copy.
 * Threads: any thread, not concurrently with another call on the same config.
 * Errors: none: NULL and already-freed handles are ignored.
 */
void tether_config_free(struct tether_config *config);

/**
 * Copy the message of the last failed call on this config (a setter, `tether_config_validate`,
 * or a `tether_client_new` that used it) into `buf` as a NUL-terminated string. Same contract
 * as `tether_client_last_error`.
 *
 * Ownership: copies into your `buf`; the stored message stays the config's.
 * Threads: any thread (the message is per config, not per thread).
 * Errors: `TETHER_ERR_BUFFER_TOO_SMALL` (a truncated copy, `*needed_out` set),
 * `TETHER_ERR_NULL_PARAMETER` (`config` NULL, or `buf` NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE` (a freed config).
 */
enum tether_status tether_config_last_error(const struct tether_config *config, char *buf, size_t len, size_t *needed_out);

/**
 * Check every value now, as `tether_client_new` will: `TETHER_OK`, or
 * `TETHER_ERR_INVALID_URL` / `TETHER_ERR_INVALID_CONFIG` with the reason in
 * `tether_config_last_error`.
 *
 * Ownership: borrows `config`; nothing is created.
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_INVALID_URL` /
 * `TETHER_ERR_INVALID_CONFIG` (the reason in `tether_config_last_error`).
 */
enum tether_status tether_config_validate(const struct tether_config *config);

/**
 * The server URL: `ws://` or `wss://`, a host, an optional port and path. Checked at once:
 * `TETHER_ERR_INVALID_URL` with the reason ("unsupported scheme `http`...", "the host is
 * missing", ...) in `tether_config_last_error`; the previous URL is kept then.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or `url` NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_URL` (not UTF-8, or not a ws:// or wss:// URL; the previous
 * URL is kept), the reason in `tether_config_last_error`.
 */
enum tether_status tether_config_set_url(struct tether_config *config, const char *url);

/**
 * What sends do when the outbox is full: a `tether_overflow` value. `wait_timeout_ms` is
 * used by `TETHER_OVERFLOW_WAIT` only.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept),
 * the reason in `tether_config_last_error`.
 */
enum tether_status tether_config_set_overflow_policy(struct tether_config *config, int policy, uint64_t wait_timeout_ms);

/**
 * How callbacks are delivered: a `tether_dispatch` value (default
 * `TETHER_DISPATCH_THREAD`).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept),
 * the reason in `tether_config_last_error`.
 */
enum tether_status tether_config_set_dispatch(struct tether_config *config, int mode);

/**
 * Set the number of worker threads of Tether's internal I/O runtime (1 to 64; default 1),
 * shared by all clients of the process. Only before the first client is created:
 * afterwards `TETHER_ERR_INVALID_STATE`. Out of range: `TETHER_ERR_INVALID_ARGUMENT`.
 *
 * Ownership: no pointers.
 * Threads: any thread, before the first `tether_client_new` of the process.
 * Errors: `TETHER_ERR_INVALID_ARGUMENT` (`count` outside 1..=64), `TETHER_ERR_INVALID_STATE` (a
 * client was created already: the runtime runs).
 */
enum tether_status tether_runtime_set_worker_threads(size_t count);

/**
 * Route Tether's log records to `callback` (process-wide, for all clients), up to
 * `max_level` (a `tether_log_level`). NULL or `TETHER_LOG_OFF` turns logging off.
 *
 * The first call with a callback installs Tether's `tracing` subscriber as the process's
 * global default; if another Rust library in the process already installed one, this
 * returns `TETHER_ERR_INVALID_STATE` and nothing changes. Records from other libraries are
 * never passed on. The callback runs on whichever thread logs (Tether's I/O threads
 * included), possibly concurrently: keep it short and thread-safe, copy the strings, and do
 * not call Tether from it (`tether_set_log_callback` from inside it returns
 * `TETHER_ERR_REENTRANT`). After this returns, the previous callback is no longer called;
 * `user_data` is not freed by Tether.
 *
 * Ownership: `user_data` stays yours (passed to every call of `callback`; keep it valid until the
 * callback is replaced or cleared); the strings the callback gets are borrowed for that call only.
 * Threads: any thread; process-wide. The callback itself may run on any thread, concurrently with
 * itself; calling this from inside it is refused.
 * Errors: `TETHER_ERR_INVALID_ARGUMENT` (`max_level` not a `tether_log_level`),
 * `TETHER_ERR_INVALID_STATE` (another `tracing` subscriber is installed), `TETHER_ERR_REENTRANT`
 * (from inside the log callback).
 */
enum tether_status tether_set_log_callback(tether_log_callback callback, void *user_data, int max_level);

/**
 * Call a credentials provider before every connect attempt (see `tether_credentials_provider`)
 * for fresh headers and an envelope token, like SignalR's `accessTokenFactory`. NULL removes
 * it. The config keeps `provider` and `user_data`; so does every client made from it.
 *
 * Ownership: `user_data` stays yours; keep it valid while any client made from this config
 * lives (Tether never frees it).
 * Threads: configure a config from one thread at a time; the provider runs on one of Tether's
 * threads, never twice at once for one client (clients made from one config may call it
 * concurrently).
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config).
 */
enum tether_status tether_config_set_credentials_provider(struct tether_config *config, tether_credentials_provider provider, void *user_data);

/**
 * From inside a provider: add a header to this attempt's upgrade request.
 *
 * Ownership: `name` and `value` are borrowed for the call (copied).
 * Threads: only inside the provider call that received `credentials`, on its thread.
 * Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8). A header
 * that may not be sent fails the attempt with `TETHER_ERR_CREDENTIALS`.
 */
enum tether_status tether_credentials_add_header(struct tether_credentials *credentials, const char *name, const char *value);

/**
 * From inside a provider: the envelope `hello` token for this attempt (instead of the
 * configured one).
 *
 * Ownership: `token` is borrowed for the call (copied).
 * Threads: only inside the provider call that received `credentials`, on its thread.
 * Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8).
 */
enum tether_status tether_credentials_set_token(struct tether_credentials *credentials, const char *token);

/**
 * From inside a provider that is about to return a failure: the text the failure reports
 * (`on_error` with `TETHER_ERR_CREDENTIALS`).
 *
 * Ownership: `message` is borrowed for the call (copied).
 * Threads: only inside the provider call that received `credentials`, on its thread.
 * Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8).
 */
enum tether_status tether_credentials_set_error(struct tether_credentials *credentials, const char *message);

/**
 * What the server chose on the last connection made: copies the text `what` (a
 * `tether_info`; `index` selects the header for the header kinds, else ignored) into `buf` as
 * a NUL-terminated string, as `tether_client_last_error` does. The values are set before that
 * connection's `on_open` and stay after the link is lost.
 *
 * Ownership: copies into your `buf`; `*needed_out` (may be NULL) gets the size needed.
 * Threads: any thread, concurrently, and from inside callbacks.
 * Errors: `TETHER_ERR_BUFFER_TOO_SMALL` (a truncated copy), `TETHER_ERR_NOT_READY` (no
 * connection made yet), `TETHER_ERR_INVALID_ARGUMENT` (`what` or `index` out of range),
 * `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_CLOSED` (being freed).
 */
enum tether_status tether_client_connection_info(const struct tether_client *client, int what, size_t index, char *buf, size_t len, size_t *needed_out);

/**
 * The last connection's number (1 for the client's first, one more per connection made) to
 * `*connection_out` and the number of headers of its 101 answer to `*header_count_out` (both
 * may be NULL).
 *
 * Ownership: writes your outputs on success.
 * Threads: any thread, concurrently, and from inside callbacks.
 * Errors: `TETHER_ERR_NOT_READY` (no connection made yet), `TETHER_ERR_NULL_PARAMETER`,
 * `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_CLOSED` (being freed).
 */
enum tether_status tether_client_connection_counts(const struct tether_client *client, uint64_t *connection_out, size_t *header_count_out);

/**
 * A short, static, NUL-terminated English description of a status code. Takes an `int` so
 * that any value is safe to pass: unknown values give "unknown status". Never NULL; the
 * string must not be freed.
 *
 * Ownership: returns a static string: never NULL, do not free.
 * Threads: any thread.
 * Errors: none: an unknown value gives "unknown status".
 */
const char *tether_status_str(int status);

/**
 * The version of the loaded library, e.g. "0.1.0" (compare with `TETHER_VERSION_STRING`
 * to detect a header/library mismatch). Static; never NULL; do not free.
 *
 * Ownership: returns a static string: never NULL, do not free.
 * Threads: any thread.
 * Errors: none.
 */
const char *tether_version(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* TETHER_H */

/* cbindgen writes the trailer after the include guard: this part has its own. */
#ifndef TETHER_H_SIZED
#define TETHER_H_SIZED

/*
 * SIZE-PREFIXED STRUCTS
 *   tether_callbacks and tether_stats begin with size_t struct_size: the sizeof your program
 *   was compiled with. Initialise them with the macros or functions below (never {0}: a zero
 *   struct_size is refused with TETHER_ERR_INVALID_ARGUMENT). The library reads and writes
 *   only the fields that fit in struct_size, so a program built against an older header runs
 *   on a newer library without an over-read or an overflow.
 */

/**
 * Zero `*cb` and set `cb->struct_size` to this header's `sizeof(tether_callbacks)`.
 *
 * Ownership: writes your `*cb` (non-NULL); nothing is allocated.
 * Threads: any thread (inline, in your program; the library is not called).
 * Errors: none.
 */
static inline void tether_callbacks_init(tether_callbacks *cb) {
    unsigned char *bytes = (unsigned char *)cb;
    size_t i;
    for (i = 0; i < sizeof(tether_callbacks); i++) bytes[i] = 0;
    cb->struct_size = sizeof(tether_callbacks);
}

/**
 * Zero `*stats` and set `stats->struct_size` to this header's `sizeof(tether_stats)`.
 *
 * Ownership: writes your `*stats` (non-NULL); nothing is allocated.
 * Threads: any thread (inline, in your program; the library is not called).
 * Errors: none.
 */
static inline void tether_stats_init(tether_stats *stats) {
    unsigned char *bytes = (unsigned char *)stats;
    size_t i;
    for (i = 0; i < sizeof(tether_stats); i++) bytes[i] = 0;
    stats->struct_size = sizeof(tether_stats);
}

/**
 * A zeroed tether_callbacks with its struct_size set: what tether_callbacks_init() writes.
 *
 * Ownership: returns a value; nothing is allocated.
 * Threads: any thread (inline, in your program; the library is not called).
 * Errors: none.
 */
static inline tether_callbacks tether_callbacks_make(void) {
    tether_callbacks cb;
    tether_callbacks_init(&cb);
    return cb;
}

/**
 * A zeroed tether_stats with its struct_size set: what tether_stats_init() writes.
 *
 * Ownership: returns a value; nothing is allocated.
 * Threads: any thread (inline, in your program; the library is not called).
 * Errors: none.
 */
static inline tether_stats tether_stats_make(void) {
    tether_stats stats;
    tether_stats_init(&stats);
    return stats;
}

/** Initialisers: `tether_callbacks cb = TETHER_CALLBACKS_INIT;`, `tether_stats st =
 * TETHER_STATS_INIT;` (C: a designated initializer, so usable for static objects too; C++:
 * the _make() functions). */
#ifdef __cplusplus
#define TETHER_CALLBACKS_INIT (tether_callbacks_make())
#define TETHER_STATS_INIT (tether_stats_make())
#else
#define TETHER_CALLBACKS_INIT {.struct_size = sizeof(tether_callbacks)}
#define TETHER_STATS_INIT {.struct_size = sizeof(tether_stats)}
#endif

#endif  /* TETHER_H_SIZED */

/* The setters of core's option table: generated by ffi/examples/c_setters.rs from the table_setters!
 * rows of ffi/src/config.rs and core/src/options.rs. Do not edit: run ffi/gen-header.sh. */
#ifndef TETHER_H_SETTERS
#define TETHER_H_SETTERS

#ifdef __cplusplus
extern "C" {
#endif  // __cplusplus

/**
 * The proxy to connect through (`http://`, `socks5://`, `socks5h://`, with optional
 * `user:password@`), or `"none"` for a direct connection. Unset: the environment decides.
 *
 * Sets `proxy` (default from the environment): `http://[user:password@]host[:port]` (HTTP CONNECT),
 * `socks5://...` (SOCKS5, the client resolves the server's name), `socks5h://...` (SOCKS5, the
 * proxy resolves it), or `none` for a direct connection; unset, `https_proxy` / `http_proxy` /
 * `all_proxy` / `no_proxy` are read as curl does (docs/PROXIES.md). Read back without the password.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_proxy(struct tether_config *config, const char *proxy);

/**
 * Sets `headers` (default none): extra HTTP headers on the upgrade request (for example
 * `Authorization`), checked at build.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_add_header(struct tether_config *config, const char *name, const char *value);

/**
 * Offer a subprotocol (`Sec-WebSocket-Protocol`); may be called several times.
 *
 * Sets `subprotocols` (default none): offered `Sec-WebSocket-Protocol` values (HTTP tokens).
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_add_subprotocol(struct tether_config *config, const char *protocol);

/**
 * Sets `connect_timeout` (default 10000 ms): time allowed for TCP connect, TLS and the HTTP upgrade
 * together.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_connect_timeout_ms(struct tether_config *config, uint64_t timeout_ms);

/**
 * Happy Eyeballs (RFC 8305) connection attempt delay, for hosts with several addresses (from DNS or
 * `tether_config_add_resolve`); the first TCP connection to succeed wins.
 *
 * Sets `happy_eyeballs_delay` (default 250 ms): a host with several addresses: how long one address
 * may try to connect before the next is started alongside it (RFC 8305; at least 10 ms and below
 * `connect_timeout`); a refused address hands over at once, and a retry starts with the address
 * that worked last.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_happy_eyeballs_delay_ms(struct tether_config *config, uint64_t delay_ms);

/**
 * Connect to `address` for `host` instead of asking DNS (like curl's `--resolve`): pin a name to
 * known addresses, or test address fallback. Call it once per address, in the order to try them
 * (they are then tried the Happy Eyeballs way, see `tether_config_set_happy_eyeballs_delay_ms`);
 * once any is given, DNS is not asked at all.
 *
 * `host` must be the URL's host (compared without case; an IPv6 host with or without brackets).
 * `address` is an IP address (`"10.0.0.7"`, `"::1"`: the URL's port is used) or an IP and port
 * (`"10.0.0.7:8443"`, `"[::1]:8443"`); names are not accepted. The URL's host is still what the
 * upgrade request's `Host` header, the TLS server name and the certificate check use. Another host
 * than the URL's, or an address that is not an IP (with a port other than 0), is refused when the
 * config is built.
 *
 * Sets `resolve` (default DNS): connect to these addresses instead of asking DNS, like curl's
 * `--resolve`: host → IPs, with or without a port; the host must be the URL's, which the upgrade
 * and TLS still use.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_add_resolve(struct tether_config *config, const char *host, const char *address);

/**
 * Which CAs `wss://` trusts: a `tether_tls_roots` value (default `TETHER_TLS_ROOTS_SYSTEM`). A CA
 * file or PEM, when one is set, wins over it, whatever the order of the calls.
 *
 * Sets `tls_roots` (default `system`): `system` (the OS store, falling back to the bundled roots)
 * or `webpki` (the bundled Mozilla roots); a custom CA (`ca_file`, `ca_pem`) wins over it.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept), the
 * reason in `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option).
 */
enum tether_status tether_config_set_tls_roots(struct tether_config *config, int roots);

/**
 * Trust only the CA certificates in this PEM file (read and parsed when the config is built; takes
 * precedence over the other TLS root settings).
 *
 * Sets `ca_file` (default none): trust only the CA certificates in this PEM file (read at build).
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_tls_ca_file(struct tether_config *config, const char *path);

/**
 * Trust only the CA certificates in this PEM text (`len` bytes, copied; takes precedence over the
 * named root set, and a CA file over it).
 *
 * Sets `ca_pem` (default none): trust only the CA certificates in this PEM text (`ca_file` wins
 * over it).
 *
 * Ownership: borrows `config`; the `len` bytes at the pointer are borrowed for the call only
 * (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL, or the pointer NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE` (a freed config). The value itself is checked when the config is
 * built (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_tls_ca_pem(struct tether_config *config, const uint8_t *pem, size_t len);

/**
 * Mutual TLS: the client certificate chain from this PEM file (read when the config is built).
 *
 * Sets `client_cert_file` (default none): mutual TLS: a PEM file with the client certificate chain
 * (leaf first), presented when the server asks; needs `client_key_file` or `client_key_pem`.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_client_cert_file(struct tether_config *config, const char *path);

/**
 * Mutual TLS: the client certificate's private key from this PEM file.
 *
 * Sets `client_key_file` (default none): mutual TLS: a PEM file with the client certificate's
 * private key (PKCS#8, PKCS#1 RSA or SEC1 EC), checked against the certificate at build.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_client_key_file(struct tether_config *config, const char *path);

/**
 * Mutual TLS: the client certificate chain as PEM text (`len` bytes, copied).
 *
 * Sets `client_cert_pem` (default none): mutual TLS: the client certificate chain as PEM text
 * (instead of `client_cert_file`).
 *
 * Ownership: borrows `config`; the `len` bytes at the pointer are borrowed for the call only
 * (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL, or the pointer NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE` (a freed config). The value itself is checked when the config is
 * built (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_client_cert_pem(struct tether_config *config, const uint8_t *pem, size_t len);

/**
 * Mutual TLS: the client certificate's private key as PEM text (`len` bytes, copied).
 *
 * Sets `client_key_pem` (default none): mutual TLS: the private key as PEM text (instead of
 * `client_key_file`).
 *
 * Ownership: borrows `config`; the `len` bytes at the pointer are borrowed for the call only
 * (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL, or the pointer NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE` (a freed config). The value itself is checked when the config is
 * built (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_client_key_pem(struct tether_config *config, const uint8_t *pem, size_t len);

/**
 * Sets `tls_insecure` (default `false`): accept any server certificate: tests only, it removes all
 * protection TLS gives.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_danger_accept_invalid_certs(struct tether_config *config, bool accept);

/**
 * Sets `reconnect` (default `true`): reconnect automatically.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_reconnect_enabled(struct tether_config *config, bool enabled);

/**
 * Reconnect backoff.
 *
 * Sets:
 * - `backoff_initial` from `initial_ms` (default 500 ms): bound of the first reconnect delay: the
 *   delay before attempt n is uniform in [0, min(backoff_max, backoff_initial ×
 *   backoff_multiplier^(n-1))].
 * - `backoff_max` from `max_ms` (default 30000 ms): cap on any one reconnect delay.
 * - `backoff_multiplier` from `multiplier` (default 2.0): growth of the delay bound per attempt (at
 *   least 1.0).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_backoff(struct tether_config *config, uint64_t initial_ms, uint64_t max_ms, double multiplier);

/**
 * Sets `max_reconnect_attempts` (default unlimited): reconnect attempts allowed per outage (0:
 * unlimited).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_max_reconnect_attempts(struct tether_config *config, uint32_t attempts);

/**
 * Sets `max_retry_duration` (default unlimited): cap on the time spent retrying in one outage (0:
 * unlimited).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_max_retry_duration_ms(struct tether_config *config, uint64_t duration_ms);

/**
 * Sets `min_uptime` (default 5000 ms): a link must stay up this long before the attempt counter and
 * backoff reset.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_min_uptime_ms(struct tether_config *config, uint64_t uptime_ms);

/**
 * Heartbeat: a WebSocket ping every `interval_ms`; if nothing arrives within `timeout_ms` of a
 * ping, the link is dead and is reconnected. `interval_ms` 0 turns it off.
 *
 * Sets:
 * - `ping_interval` from `interval_ms` (default 15000 ms): send a WebSocket ping this often; a link
 *   on which nothing arrives within `ping_interval + ping_timeout` is dead and is reconnected (the
 *   deadline of a ping queued behind a large message starts once it is in the socket) (0: off).
 * - `ping_timeout` from `timeout_ms` (default 10000 ms): time allowed for any frame to arrive after
 *   a ping.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_heartbeat(struct tether_config *config, uint64_t interval_ms, uint64_t timeout_ms);

/**
 * Outbox bounds, in messages and bytes (including the batch being written).
 *
 * Sets:
 * - `outbox_max_messages` from `max_messages` (default 4096): outbox bound by count (queued plus
 *   being written).
 * - `outbox_max_bytes` from `max_bytes` (default 16 MiB): outbox bound by bytes (queued plus being
 *   written).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_outbox_limits(struct tether_config *config, size_t max_messages, size_t max_bytes);

/**
 * Sets `queue_while_disconnected` (default `true`): queue messages while not ready; off: a send is
 * refused as not ready.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_queue_while_disconnected(struct tether_config *config, bool queue);

/**
 * Sets `max_message_size` (default 4 MiB, or `outbox_max_bytes` if smaller): largest outbound
 * message a send accepts, as it goes on the wire (envelope mode: the whole frame); at most
 * `outbox_max_bytes`.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_max_outbound_message_size(struct tether_config *config, size_t bytes);

/**
 * Largest inbound message and frame, in bytes. A bigger one closes the link with 1009 (`on_error`
 * with `TETHER_ERR_TOO_LARGE`).
 *
 * Sets:
 * - `max_inbound_message_size` from `message_bytes` (default 16 MiB): largest inbound message: a
 *   larger one closes the link with 1009.
 * - `max_inbound_frame_size` from `frame_bytes` (default 16 MiB): largest inbound frame: a larger
 *   one closes the link with 1009.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_max_inbound_size(struct tether_config *config, size_t message_bytes, size_t frame_bytes);

/**
 * Time `tether_client_close` spends draining the outbox and closing. `tether_client_free` waits at
 * most this plus 2 s.
 *
 * Sets `close_timeout` (default 5000 ms): time `close` spends draining the outbox and completing
 * the closing handshake.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_close_timeout_ms(struct tether_config *config, uint64_t timeout_ms);

/**
 * Sets `event_queue_capacity` (default 1024): inbound messages waiting for the application before
 * the client stops reading the socket (backpressure).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_event_queue_capacity(struct tether_config *config, size_t capacity);

/**
 * Sets `read_buffer_size` (default 32 KiB): socket read buffer in bytes (at least 1024).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_read_buffer_size(struct tether_config *config, size_t bytes);

/**
 * Sets `write_batch_bytes` (default 256 KiB): bytes written per batch before one flush.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_write_batch_bytes(struct tether_config *config, size_t bytes);

/**
 * Raw WebSocket (`TETHER_PROTOCOL_RAW`, default) or the Tether envelope with acks
 * (`TETHER_PROTOCOL_ENVELOPE`): a `tether_protocol` value.
 *
 * Sets `protocol` (default `raw`): `raw` WebSocket messages to any server, or `envelope`: the
 * Tether protocol with acks, resend and de-duplication (docs/PROTOCOL.md; the server must speak
 * it).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept), the
 * reason in `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option).
 */
enum tether_status tether_config_set_protocol(struct tether_config *config, int protocol);

/**
 * Sets `session_id` (default random, new per client): envelope mode: the session id sent in `hello`
 * (1 to 128 printable ASCII characters), stable across reconnects. Reusing it in a new process does
 * not resume the old one's messages (they lived in its memory): the server starts the session over
 * and the new client reports a session reset with `client_state_lost`.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_session_id(struct tether_config *config, const char *id);

/**
 * Keep the outbox in the file at `path` (created if missing; copied): queued and unacknowledged
 * messages, the id sequence and the session survive the process, and a client created again with
 * the same path resumes the session (docs/PERSISTENCE.md). One live client per file: a second gets
 * `TETHER_ERR_STORAGE` from `tether_client_new`.
 *
 * Sets `outbox_path` (default in memory only): keep the outbox in this file: queued and
 * unacknowledged messages, the id sequence and the session survive the process, and a client
 * started again with the same path resumes the session (`docs/PERSISTENCE.md`); one live client per
 * file.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_outbox_path(struct tether_config *config, const char *path);

/**
 * What the persistent outbox makes durable against a machine crash: a `tether_outbox_sync` value
 * (default `TETHER_OUTBOX_SYNC_BATCH`).
 *
 * Sets `outbox_sync` (default `batch`): what the persistent outbox makes durable against a machine
 * crash (a killed process loses nothing in any mode): `none` (the OS writes back), `batch` (one
 * fdatasync per batch written to the socket) or `always` (one per message, before send returns).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept), the
 * reason in `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option).
 */
enum tether_status tether_config_set_outbox_sync(struct tether_config *config, int sync);

/**
 * Sets `token` (default none): envelope mode: the token sent in `hello` for the server to check.
 *
 * Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), `TETHER_ERR_INVALID_HANDLE` (a
 * freed config), `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in
 * `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_auth_token(struct tether_config *config, const char *token);

/**
 * Sets `signing_key` (default none): envelope mode: HMAC-SHA256 on every message, both ways
 * (inbound messages without a valid signature are refused).
 *
 * Ownership: borrows `config`; the `len` bytes at the pointer are borrowed for the call only
 * (copied).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL, or the pointer NULL with a non-zero `len`),
 * `TETHER_ERR_INVALID_HANDLE` (a freed config). The value itself is checked when the config is
 * built (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`).
 */
enum tether_status tether_config_set_signing_key(struct tether_config *config, const uint8_t *key, size_t len);

/**
 * Sets `compression_threshold` (default never): envelope mode: compress payloads of at least this
 * many bytes (raw DEFLATE), when that makes them smaller (0: never).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_compression_threshold(struct tether_config *config, size_t bytes);

/**
 * Envelope mode: wait `timeout_ms` for an ack before writing a message again, and report it failed
 * (`TETHER_ERR_ACK_TIMEOUT`) after `retries` such timeouts.
 *
 * Sets:
 * - `ack_timeout` from `timeout_ms` (default 10000 ms): envelope mode: time to wait for an ack
 *   before writing a message again.
 * - `ack_retries` from `retries` (default 2): envelope mode: ack timeouts a message may have before
 *   it fails.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_ack_timeout(struct tether_config *config, uint64_t timeout_ms, uint32_t retries);

/**
 * Sets `handshake_timeout` (default 10000 ms): envelope mode: time allowed for `hello` →
 * `welcome`.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_handshake_timeout_ms(struct tether_config *config, uint64_t timeout_ms);

/**
 * Sets `app_ping` (default on in envelope mode): envelope mode: also send app-level pings with each
 * heartbeat (for the app RTT); turning it on in raw mode is an error.
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_app_ping(struct tether_config *config, bool on);

/**
 * Which thread runs the client's I/O: a `tether_io_driver` value (default
 * `TETHER_IO_DRIVER_RUNTIME`). `TETHER_IO_DRIVER_CALLER` needs `TETHER_DISPATCH_POLL` (else
 * `tether_client_new` fails with `TETHER_ERR_INVALID_CONFIG`): the thread in `tether_client_poll*`
 * and the `tether_client_wait_*` calls then reads and writes the socket itself (docs/CALLER_IO.md).
 *
 * Sets `io_driver` (default `runtime`): which thread runs the client's I/O: `runtime` (Tether's
 * shared runtime thread) or `caller` (the application's thread while it waits on the client, poll
 * delivery only: no thread hop per message; see `keeper_after`).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept), the
 * reason in `tether_config_last_error`. The value itself is checked when the config is built
 * (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option).
 */
enum tether_status tether_config_set_io_driver(struct tether_config *config, int driver);

/**
 * With `TETHER_IO_DRIVER_CALLER`: after `after_ms` without a thread waiting on the client, a keeper
 * thread runs its I/O (heartbeats, reconnects) until one waits again; 0: no keeper, no thread
 * besides yours (nothing happens between your polls).
 *
 * Sets `keeper_after` (default 10 ms): with `io_driver` `caller`: a keeper thread drives the I/O
 * (heartbeats, reconnects) once nobody has waited on the client this long; unset, there is no
 * thread besides the application's and nothing happens between its polls (0: no keeper).
 *
 * Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
 * Threads: configure a config from one thread at a time (not concurrently with another call on the
 * same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
 * without affecting the clients made from it.
 * Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
 * config). The value itself is checked when the config is built (`tether_config_validate`,
 * `tether_client_new`: `TETHER_ERR_INVALID_CONFIG` naming the option, the reason in
 * `tether_config_last_error`).
 */
enum tether_status tether_config_set_keeper_after_ms(struct tether_config *config, uint64_t after_ms);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* TETHER_H_SETTERS */
