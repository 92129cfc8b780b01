/* The header compiles as C (C99 and C11, -Wall -Wextra -Wpedantic -Werror), included twice,
 * and every public type is usable from C. */
#include "tether.h"
#include "tether.h" /* the include guard works */

#if !defined(TETHER_VERSION_MAJOR) || !defined(TETHER_VERSION_NUMBER) || TETHER_VERSION_NUMBER < 100
#error "version macros missing"
#endif

static const char header_version[] = TETHER_VERSION_STRING;
/* The initialisers are constant expressions (usable for static objects). */
static const tether_callbacks static_callbacks = TETHER_CALLBACKS_INIT;

int main(void) {
    tether_callbacks callbacks = TETHER_CALLBACKS_INIT;
    tether_stats stats = TETHER_STATS_INIT;
    tether_callbacks callbacks2;
    tether_stats stats2;
    tether_callbacks_init(&callbacks2);
    tether_stats_init(&stats2);
    tether_status status = TETHER_OK;
    tether_state state = TETHER_STATE_CONNECTING;
    tether_message_type kind = TETHER_MESSAGE_TEXT;
    tether_delivery delivery = TETHER_DELIVERY_UNKNOWN;
    tether_dispatch dispatch = TETHER_DISPATCH_POLL;
    tether_overflow overflow = TETHER_OVERFLOW_DROP_OLDEST;
    tether_tls_roots roots = TETHER_TLS_ROOTS_WEBPKI;
    tether_protocol protocol = TETHER_PROTOCOL_ENVELOPE;
    tether_log_level level = TETHER_LOG_TRACE;
    tether_log_callback log = NULL;
    tether_user_data_free finalizer = NULL;
    tether_client *client = NULL;
    tether_config *config = NULL;
    (void)callbacks;
    (void)stats;
    if (callbacks2.struct_size != sizeof callbacks2 || stats2.struct_size != sizeof stats2 ||
        static_callbacks.struct_size != sizeof static_callbacks || callbacks2.on_message != NULL)
        return 1;
    (void)log;
    (void)finalizer;
    (void)client;
    (void)config;
    return (int)status + (int)state + (int)kind + (int)delivery + (int)dispatch + (int)overflow +
                   (int)roots + (int)protocol + (int)level + (int)sizeof header_version >
               0
               ? 0
               : 1;
}
