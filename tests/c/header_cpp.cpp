// The header compiles as C++ (C++11 and C++17, -Wall -Wextra -Wpedantic -Werror), included
// twice, with C linkage; with C++17 the wrapper header compiles too.
#include "tether.h"
#include "tether.h"

#if __cplusplus >= 201703L
#include "tether.hpp"
#include "tether.hpp"
#endif

#include <type_traits>

static_assert(std::is_pod<tether_stats>::value, "tether_stats is plain data");
static_assert(std::is_pod<tether_callbacks>::value, "tether_callbacks is plain data");

extern "C" {
// Taking the functions' addresses with C-linkage pointer types checks the declarations.
typedef tether_status (*send_fn)(tether_client *, const char *, size_t, uint64_t *);
}

int main() {
    send_fn send = tether_client_send_text;
    tether_callbacks callbacks = TETHER_CALLBACKS_INIT;
    tether_stats stats = TETHER_STATS_INIT;
    tether_callbacks callbacks2;
    tether_callbacks_init(&callbacks2);
    if (callbacks.struct_size != sizeof callbacks || stats.struct_size != sizeof stats ||
        callbacks2.struct_size != sizeof callbacks2)
        return 1;
#if __cplusplus >= 201703L
    static_assert(!std::is_copy_constructible<tether::Client>::value, "move-only");
    static_assert(std::is_nothrow_move_constructible<tether::Client>::value, "movable");
#endif
    return send != nullptr && TETHER_OK == 0 ? 0 : 1;
}
