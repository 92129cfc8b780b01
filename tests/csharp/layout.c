/* Prints the sizes and offsets of the structs the C# binding mirrors (tests/csharp: the test
 * struct_layout_matches_the_c_header compares them with Marshal.SizeOf / OffsetOf). */
#include <stddef.h>
#include <stdio.h>

#include "tether.h"

int main(void) {
    printf("callbacks=%zu callbacks.on_closed=%zu callbacks.on_session_reset=%zu "
           "stats=%zu stats.last_app_rtt_us=%zu "
           "session_reset=%zu session_reset.inbound_may_repeat=%zu "
           "session_reset.acked_at_risk_first=%zu session_reset.server_revision=%zu\n",
           sizeof(tether_callbacks), offsetof(tether_callbacks, on_closed),
           offsetof(tether_callbacks, on_session_reset), sizeof(tether_stats),
           offsetof(tether_stats, last_app_rtt_us), sizeof(tether_session_reset),
           offsetof(tether_session_reset, inbound_may_repeat),
           offsetof(tether_session_reset, acked_at_risk_first),
           offsetof(tether_session_reset, server_revision));
    return 0;
}
