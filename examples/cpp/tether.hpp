// tether.hpp - a header-only C++17 wrapper over the Tether C API (tether.h).
//
//   tether::Config config("ws://127.0.0.1:9001/");
//   config.heartbeat(std::chrono::seconds(15), std::chrono::seconds(10));
//   tether::Handlers handlers;
//   handlers.on_message = [](std::string_view data, tether::MessageType) { ... };
//   tether::Client client(config, std::move(handlers));   // move-only; frees itself
//   client.send_text("hello");                             // id, or throws tether::Error
//
// Errors from the C API become tether::Error (status + the library's message). Handlers are
// std::function objects, owned by the client and destroyed after its last callback.
// Handlers run on the client's dispatcher thread (default), or inside poll()/poll_for() in
// poll mode (Config::poll_mode()). An exception escaping a handler must not cross into C:
// it is caught and given to Handlers::on_exception, or std::terminate() is called if that
// is empty (as for any noexcept function).
#ifndef TETHER_HPP
#define TETHER_HPP

#include <tether.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace tether {

/// Connection states.
enum class State {
    Connecting = TETHER_STATE_CONNECTING,
    Open = TETHER_STATE_OPEN,
    Ready = TETHER_STATE_READY,
    Closing = TETHER_STATE_CLOSING,
    Closed = TETHER_STATE_CLOSED,
    Reconnecting = TETHER_STATE_RECONNECTING,
};

/// Kind of an inbound message.
enum class MessageType { Text, Binary };

/// A failed call: the status code and the library's message.
class Error : public std::runtime_error {
public:
    Error(tether_status status, const std::string &message)
        : std::runtime_error(message.empty() ? std::string(tether_status_str(status)) : message),
          status_(status) {}
    tether_status status() const noexcept { return status_; }

private:
    tether_status status_;
};

namespace detail {

template <typename Handle, typename Fn>
std::string last_error(const Handle *handle, Fn fn) {
    size_t needed = 0;
    fn(handle, nullptr, 0, &needed);
    std::string message(needed, '\0');
    if (needed > 0 && fn(handle, &message[0], needed, nullptr) == TETHER_OK) {
        message.resize(needed - 1);
    } else {
        message.clear();
    }
    return message;
}

inline uint64_t to_ms(std::chrono::milliseconds d) {
    return d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
}

}  // namespace detail

/// A client configuration (move-only). Setters return *this and throw tether::Error.
class Config {
public:
    explicit Config(const std::string &url) : handle_(tether_config_new()) {
        if (!handle_) throw Error(TETHER_ERR_INTERNAL, "tether_config_new failed");
        check(tether_config_set_url(get(), url.c_str()));
    }

    Config &poll_mode(bool on = true) {
        return check(tether_config_set_dispatch(get(), on ? TETHER_DISPATCH_POLL : TETHER_DISPATCH_THREAD));
    }
    Config &heartbeat(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
        return check(tether_config_set_heartbeat(get(), detail::to_ms(interval), detail::to_ms(timeout)));
    }
    Config &backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, double multiplier) {
        return check(tether_config_set_backoff(get(), detail::to_ms(initial), detail::to_ms(max), multiplier));
    }
    Config &reconnect(bool enabled) { return check(tether_config_set_reconnect_enabled(get(), enabled)); }
    Config &max_reconnect_attempts(uint32_t attempts) {
        return check(tether_config_set_max_reconnect_attempts(get(), attempts));
    }
    Config &connect_timeout(std::chrono::milliseconds t) {
        return check(tether_config_set_connect_timeout_ms(get(), detail::to_ms(t)));
    }
    Config &close_timeout(std::chrono::milliseconds t) {
        return check(tether_config_set_close_timeout_ms(get(), detail::to_ms(t)));
    }
    Config &header(const std::string &name, const std::string &value) {
        return check(tether_config_add_header(get(), name.c_str(), value.c_str()));
    }
    Config &subprotocol(const std::string &protocol) {
        return check(tether_config_add_subprotocol(get(), protocol.c_str()));
    }
    Config &outbox_limits(size_t max_messages, size_t max_bytes) {
        return check(tether_config_set_outbox_limits(get(), max_messages, max_bytes));
    }
    Config &queue_while_disconnected(bool queue) {
        return check(tether_config_set_queue_while_disconnected(get(), queue));
    }
    Config &envelope(bool on = true) {
        return check(tether_config_set_protocol(get(), on ? TETHER_PROTOCOL_ENVELOPE : TETHER_PROTOCOL_RAW));
    }
    /// Checks every value now (tether_client_new does it too).
    Config &validate() { return check(tether_config_validate(get())); }

    tether_config *get() const noexcept { return handle_.get(); }

private:
    struct Free {
        void operator()(tether_config *c) const noexcept { tether_config_free(c); }
    };
    Config &check(tether_status status) {
        if (status != TETHER_OK) throw Error(status, detail::last_error(get(), tether_config_last_error));
        return *this;
    }
    std::unique_ptr<tether_config, Free> handle_;
};

/// The callbacks, as std::function objects; leave the ones you do not need empty.
struct Handlers {
    std::function<void(State from, State to)> on_state;
    std::function<void()> on_open;
    std::function<void()> on_ready;
    /// The view is valid during the call only.
    std::function<void(std::string_view data, MessageType type)> on_message;
    std::function<void(uint16_t code, std::string_view reason, bool will_reconnect)> on_close;
    std::function<void(uint32_t attempt, std::chrono::milliseconds delay)> on_reconnecting;
    std::function<void(uint64_t up_to)> on_written;
    std::function<void(uint64_t id)> on_acked;
    std::function<void(uint64_t id, tether_status status, std::string_view reason)> on_send_failed;
    std::function<void(tether_status status, std::string_view message)> on_error;
    /// The last callback: the client is closed for good.
    std::function<void(uint16_t code, std::string_view reason, size_t undelivered)> on_closed;
    /// An exception escaped one of the handlers above (empty: std::terminate()).
    std::function<void(std::exception_ptr)> on_exception;
};

namespace detail {

template <typename F>
void guarded(void *user_data, F &&body) noexcept {
    auto *h = static_cast<Handlers *>(user_data);
    try {
        body(*h);
    } catch (...) {
        if (!h->on_exception) std::terminate();
        try {
            h->on_exception(std::current_exception());
        } catch (...) {
            std::terminate();
        }
    }
}

inline void on_state(void *u, tether_state from, tether_state to) {
    guarded(u, [&](Handlers &h) {
        if (h.on_state) h.on_state(static_cast<State>(from), static_cast<State>(to));
    });
}
inline void on_open(void *u) {
    guarded(u, [](Handlers &h) { if (h.on_open) h.on_open(); });
}
inline void on_ready(void *u) {
    guarded(u, [](Handlers &h) { if (h.on_ready) h.on_ready(); });
}
inline void on_message(void *u, const uint8_t *data, size_t len, tether_message_type type) {
    guarded(u, [&](Handlers &h) {
        if (h.on_message)
            h.on_message(std::string_view(reinterpret_cast<const char *>(data), len),
                         type == TETHER_MESSAGE_TEXT ? MessageType::Text : MessageType::Binary);
    });
}
inline void on_close(void *u, uint16_t code, const char *reason, bool will_reconnect) {
    guarded(u, [&](Handlers &h) { if (h.on_close) h.on_close(code, reason, will_reconnect); });
}
inline void on_reconnecting(void *u, uint32_t attempt, uint64_t delay_ms) {
    guarded(u, [&](Handlers &h) {
        if (h.on_reconnecting)
            h.on_reconnecting(attempt, std::chrono::milliseconds(static_cast<long long>(delay_ms)));
    });
}
inline void on_written(void *u, uint64_t up_to) {
    guarded(u, [&](Handlers &h) { if (h.on_written) h.on_written(up_to); });
}
inline void on_acked(void *u, uint64_t id) {
    guarded(u, [&](Handlers &h) { if (h.on_acked) h.on_acked(id); });
}
inline void on_send_failed(void *u, uint64_t id, tether_status status, const char *reason) {
    guarded(u, [&](Handlers &h) { if (h.on_send_failed) h.on_send_failed(id, status, reason); });
}
inline void on_error(void *u, tether_status status, const char *message) {
    guarded(u, [&](Handlers &h) { if (h.on_error) h.on_error(status, message); });
}
inline void on_closed(void *u, uint16_t code, const char *reason, size_t undelivered) {
    guarded(u, [&](Handlers &h) { if (h.on_closed) h.on_closed(code, reason, undelivered); });
}
inline void free_handlers(void *u) { delete static_cast<Handlers *>(u); }

}  // namespace detail

/// A client (move-only). The destructor closes it gracefully and waits for the close (see
/// tether_client_free); no handler runs after it returns.
class Client {
public:
    Client(const Config &config, Handlers handlers) {
        tether_callbacks cb = TETHER_CALLBACKS_INIT;
        cb.on_state = detail::on_state;
        cb.on_open = detail::on_open;
        cb.on_ready = detail::on_ready;
        cb.on_message = detail::on_message;
        cb.on_close = detail::on_close;
        cb.on_reconnecting = detail::on_reconnecting;
        cb.on_written = detail::on_written;
        cb.on_acked = detail::on_acked;
        cb.on_send_failed = detail::on_send_failed;
        cb.on_error = detail::on_error;
        cb.on_closed = detail::on_closed;
        auto owned = std::make_unique<Handlers>(std::move(handlers));
        tether_client *raw = nullptr;
        tether_status status = tether_client_new(config.get(), &cb, owned.get(), detail::free_handlers, &raw);
        if (status != TETHER_OK) {
            // Not created: the handlers are still ours (unique_ptr frees them).
            throw Error(status, detail::last_error(config.get(), tether_config_last_error));
        }
        owned.release();  // now owned by the client; freed by detail::free_handlers
        handle_.reset(raw);
    }

    Client(Client &&) noexcept = default;
    Client &operator=(Client &&) noexcept = default;
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    /// Queue a text message; returns its id. Throws tether::Error (QUEUE_FULL, CLOSED, ...).
    uint64_t send_text(std::string_view text) {
        uint64_t id = 0;
        check(tether_client_send_text(get(), text.data(), text.size(), &id));
        return id;
    }
    /// Queue a binary message; returns its id.
    uint64_t send_binary(const void *data, size_t len) {
        uint64_t id = 0;
        check(tether_client_send_binary(get(), static_cast<const uint8_t *>(data), len, &id));
        return id;
    }
    /// Non-throwing send, for hot paths.
    tether_status try_send_text(std::string_view text, uint64_t *id = nullptr) noexcept {
        return tether_client_send_text(get(), text.data(), text.size(), id);
    }
    /// Start a graceful close (on_closed reports the end).
    void close(uint16_t code = 1000, const std::string &reason = std::string()) {
        check(tether_client_close(get(), code, reason.c_str()));
    }
    /// Poll mode: run pending callbacks here; returns how many events were handled.
    size_t poll(size_t max_events = 0) {
        size_t ran = 0;
        check(tether_client_poll(get(), max_events, &ran));
        return ran;
    }
    /// Poll mode: like poll(), waiting up to `timeout` for the first event.
    size_t poll_for(std::chrono::milliseconds timeout, size_t max_events = 0) {
        size_t ran = 0;
        check(tether_client_poll_timeout(get(), max_events, detail::to_ms(timeout), &ran));
        return ran;
    }
    /// Wait until closed; false on timeout.
    bool wait_closed(std::chrono::milliseconds timeout) {
        tether_status status = tether_client_wait_closed(get(), detail::to_ms(timeout));
        if (status == TETHER_ERR_TIMEOUT) return false;
        check(status);
        return true;
    }
    /// Envelope mode: wait until message `id` is acknowledged (true) or `timeout` passes
    /// (false). Throws if it failed (e.g. TETHER_ERR_ACK_TIMEOUT) or in raw mode
    /// (TETHER_ERR_NOT_SUPPORTED).
    bool wait_acked(uint64_t id, std::chrono::milliseconds timeout) {
        tether_status status = tether_client_wait_acked(get(), id, detail::to_ms(timeout));
        if (status == TETHER_ERR_TIMEOUT) return false;
        check(status);
        return true;
    }
    /// Where message `id` stands (never blocks).
    tether_delivery delivery(uint64_t id) const {
        tether_delivery d = TETHER_DELIVERY_UNKNOWN;
        check(tether_client_delivery_status(get(), id, &d));
        return d;
    }
    State state() const noexcept { return static_cast<State>(tether_client_state(get())); }
    tether_stats stats() const {
        tether_stats s = TETHER_STATS_INIT;
        check(tether_client_stats(get(), &s));
        return s;
    }
    std::string last_error() const { return detail::last_error(get(), tether_client_last_error); }

    tether_client *get() const noexcept { return handle_.get(); }

private:
    struct Free {
        void operator()(tether_client *c) const noexcept { tether_client_free(c); }
    };
    void check(tether_status status) const {
        if (status != TETHER_OK) throw Error(status, last_error());
    }
    std::unique_ptr<tether_client, Free> handle_;
};

}  // namespace tether

#endif  // TETHER_HPP
