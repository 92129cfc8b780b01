// A peer: Boost.Beast (Debian's libboost-dev, Boost 1.74), written the way Beast's own
// examples write a client, with the options its documentation gives for throughput.
//
//   bench_beast --url URL --workload rr|pipe|idle|free [--kind text|binary] [--size N]
//               [--window N] [--duration S] [--warmup S] [--conns N] [--iters N] [--settle S]
//
// - websocket::stream<tcp::socket> on one io_context run by the main thread (concurrency
//   hint 1: no locking), TCP_NODELAY as the other clients; the handshake is synchronous.
// - text() / binary() set once; auto_fragment(false), so a message is one frame (Beast's
//   default splits outgoing messages into frames of the write buffer size), and
//   write_buffer_bytes(128 KiB): a client masks its frames and Beast masks into that buffer,
//   one write per buffer-full (the default 4 KiB would be 16 writes per 64 KiB message);
//   128 KiB is tungstenite's write buffer, which the raw client gets.
// - (a) request/response: the synchronous calls, ws.write() then ws.read() (a blocking
//   client's natural shape: no reactor round per message).
// - (b), (c) pipelined: Beast allows one async_write and one async_read in flight at once;
//   the writer chains async_write calls while the window has room, the reader chains
//   async_read into one flat_buffer (consumed after each message, so it is reused, no
//   allocation per message), both on the one thread. Beast writes each message with its
//   own send(): it has no call to write several messages at once.
// - idle: connections with an async_read pending each. free: ws.close() (close frame, read to
//   the server's close, then the TCP teardown).
//
// Output protocol (read by bench/run.py): "MARK start", "MARK end", "RESULT {json}".
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../c/peer_common.h"

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using ws_t = websocket::stream<tcp::socket>;

static const char *CLIENT = "beast";

static std::unique_ptr<ws_t> connect(net::io_context &ioc) {
    tcp::resolver resolver(ioc);
    auto ws = std::make_unique<ws_t>(ioc);
    beast::error_code ec;
    auto results = resolver.resolve(PA.host, std::to_string(PA.port), ec);
    if (ec) peer_die("resolve: %s", ec.message().c_str());
    net::connect(ws->next_layer(), results, ec);
    if (ec) peer_die("connect: %s", ec.message().c_str());
    ws->next_layer().set_option(tcp::no_delay(true));
    ws->auto_fragment(false);
    ws->write_buffer_bytes(128 * 1024);
    ws->binary(PA.binary != 0);
    std::string host = std::string(PA.host) + ":" + std::to_string(PA.port);
    ws->handshake(host, PA.path, ec);
    if (ec) peer_die("handshake: %s", ec.message().c_str());
    return ws;
}

static void run_rr() {
    net::io_context ioc(1);
    auto ws = connect(ioc);
    unsigned char *payload = peer_payload(PA.size);
    net::const_buffer out(payload, PA.size);
    beast::flat_buffer in;
    beast::error_code ec;
    auto round_trip = [&]() {
        ws->write(out, ec);
        if (ec) peer_die("write: %s", ec.message().c_str());
        ws->read(in, ec);
        if (ec) peer_die("read: %s", ec.message().c_str());
        in.consume(in.size());
    };
    uint64_t warm = peer_now_ns() + (uint64_t)(PA.warmup * 1e9);
    while (peer_now_ns() < warm) round_trip();
    std::vector<uint64_t> samples;
    samples.reserve(1 << 20);
    uint64_t duration = (uint64_t)(PA.duration * 1e9);
    peer_mark("start");
    uint64_t start = peer_now_ns(), t1;
    for (;;) {
        uint64_t t0 = peer_now_ns();
        round_trip();
        t1 = peer_now_ns();
        samples.push_back(t1 - t0);
        if (t1 - start >= duration) break;
    }
    peer_mark("end");
    peer_emit_rr(CLIENT, samples.data(), samples.size(), t1 - start);
    ws->close(websocket::close_code::normal, ec);
}

// The pipelined run: one writer chain and one reader chain on the io_context's thread.
struct Pipe {
    ws_t &ws;
    net::io_context &ioc;
    net::const_buffer out;
    beast::flat_buffer in;
    uint64_t deadline = 0, last = 0;
    uint64_t sent = 0, received = 0, bytes = 0;
    bool writing = false, stopping = false, done = false, reading = false;

    Pipe(ws_t &w, net::io_context &c, const unsigned char *payload)
        : ws(w), ioc(c), out(payload, PA.size) {}

    void maybe_write() {
        if (writing || stopping) return;
        if (peer_now_ns() >= deadline) {
            stopping = true;
            check_done();
            return;
        }
        if (sent - received >= PA.window) return; // the reader calls back when there is room
        writing = true;
        sent++;
        ws.async_write(out, [this](beast::error_code ec, std::size_t) {
            if (ec) peer_die("write: %s", ec.message().c_str());
            writing = false;
            maybe_write();
        });
    }

    // The read chain runs from the first phase to the close (a read is always pending; the
    // close ends it with websocket::error::closed).
    void read() {
        ws.async_read(in, [this](beast::error_code ec, std::size_t n) {
            if (ec == websocket::error::closed || ec == net::error::operation_aborted) return;
            if (ec) peer_die("read: %s", ec.message().c_str());
            in.consume(in.size());
            bytes += n;
            received++;
            last = peer_now_ns();
            maybe_write();
            check_done();
            read();
        });
    }

    bool check_done() {
        if (!done && stopping && !writing && received == sent) {
            done = true;
            ioc.stop(); // ends this phase's ioc.run_for; the pending read stays queued
        }
        return done;
    }

    // One phase: returns its start; `last` is the time of the last echo.
    uint64_t run(double seconds) {
        uint64_t start = peer_now_ns();
        deadline = start + (uint64_t)(seconds * 1e9);
        sent = received = bytes = 0;
        stopping = done = false;
        last = start;
        if (!reading) {
            reading = true;
            read();
        }
        maybe_write();
        ioc.restart();
        ioc.run_for(std::chrono::milliseconds((int64_t)((seconds + 20.0) * 1e3)));
        if (!done) peer_die("run did not finish in time");
        return start;
    }
};

static void run_pipe() {
    net::io_context ioc(1);
    auto ws = connect(ioc);
    unsigned char *payload = peer_payload(PA.size);
    Pipe p(*ws, ioc, payload);
    p.run(PA.warmup);
    peer_mark("start");
    uint64_t start = p.run(PA.duration);
    peer_mark("end");
    peer_emit_pipe(CLIENT, p.received, p.bytes, p.last - start);
    // A read is pending: close asynchronously, which completes it.
    ws->async_close(websocket::close_code::normal, [](beast::error_code) {});
    ioc.restart();
    ioc.run_for(std::chrono::seconds(5));
}

static void run_idle() {
    net::io_context ioc(1);
    size_t n = PA.conns;
    std::vector<std::unique_ptr<ws_t>> all;
    std::vector<beast::flat_buffer> bufs(n);
    all.reserve(n);
    long before = peer_rss_kib();
    peer_mark("start");
    uint64_t t0 = peer_now_ns();
    for (size_t i = 0; i < n; i++) {
        all.push_back(connect(ioc));
        // An idle connection: just be ready to read.
        all.back()->async_read(bufs[i], [](beast::error_code, std::size_t) {});
    }
    double connect_s = (double)(peer_now_ns() - t0) / 1e9;
    ioc.run_for(std::chrono::microseconds((int64_t)(PA.settle * 1e6)));
    long after = peer_rss_kib();
    peer_mark("end");
    peer_emit_idle(CLIENT, n, before, after, connect_s);
    _exit(0); // the kernel closes the sockets
}

static void run_free() {
    net::io_context ioc(1);
    size_t n = PA.iters;
    std::vector<uint64_t> ns;
    peer_mark("start");
    for (size_t i = 0; i < n; i++) {
        auto ws = connect(ioc);
        usleep(5000);
        uint64_t t0 = peer_now_ns();
        beast::error_code ec;
        ws->close(websocket::close_code::normal, ec);
        if (ec) peer_die("close: %s", ec.message().c_str());
        ws.reset();
        ns.push_back(peer_now_ns() - t0);
    }
    peer_mark("end");
    peer_emit_free(CLIENT, ns.data(), ns.size());
}

int main(int argc, char **argv) {
    peer_parse_args(argc, argv);
    std::string w = PA.workload;
    if (w == "rr") run_rr();
    else if (w == "pipe") run_pipe();
    else if (w == "idle") run_idle();
    else if (w == "free") run_free();
    else peer_die("unknown workload %s", PA.workload);
    return 0;
}
