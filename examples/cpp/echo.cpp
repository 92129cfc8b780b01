// An echo client with the C++ wrapper, in poll mode: no threads of our own, the callbacks
// run inside poll_for() on this thread.
//
//   c++ -std=c++17 -I examples/cpp echo.cpp $(pkg-config --cflags --libs tether) -o echo_cpp
//   ./echo_cpp ws://127.0.0.1:9001/
#include <chrono>
#include <cstdio>
#include <string>

#include "tether.hpp"

int main(int argc, char **argv) {
    const std::string url = argc > 1 ? argv[1] : "ws://127.0.0.1:9001/";
    using namespace std::chrono_literals;
    try {
        tether::Config config(url);
        config.poll_mode().heartbeat(15s, 10s);

        int echoes = 0;
        tether::Handlers handlers;
        handlers.on_ready = [] { std::printf("connected\n"); };
        handlers.on_message = [&](std::string_view data, tether::MessageType) {
            std::printf("echo: %.*s\n", static_cast<int>(data.size()), data.data());
            echoes++;
        };
        handlers.on_error = [](tether_status, std::string_view message) {
            std::fprintf(stderr, "error: %.*s\n", static_cast<int>(message.size()), message.data());
        };

        tether::Client client(config, std::move(handlers));
        for (int i = 1; i <= 3; i++) client.send_text("hello " + std::to_string(i));

        auto deadline = std::chrono::steady_clock::now() + 10s;
        while (echoes < 3 && std::chrono::steady_clock::now() < deadline) client.poll_for(100ms);

        std::printf("%d of 3 messages echoed\n", echoes);
        return echoes == 3 ? 0 : 1;
    } catch (const tether::Error &e) {  // bad URL, invalid config, closed client...
        std::fprintf(stderr, "tether: %s (%s)\n", e.what(), tether_status_str(e.status()));
        return 2;
    }
}
