// The C ABI of include/tether.h, declared for P/Invoke. Nothing here is public: TetherClient,
// TetherOptions and Receipt are the API.
//
// Rules kept here (each is why a Unity or IL2CPP build would otherwise break):
//   - every parameter and struct field is blittable: size_t is UIntPtr, C bool is byte (a C#
//     bool marshals as a 4-byte Win32 BOOL by default), enums are int, pointers are IntPtr;
//   - strings go in as NUL-terminated UTF-8 byte[] that we encode ourselves (Utf8.Z), never as
//     string parameters (Mono's and IL2CPP's default string marshalling differ between
//     platforms); strings coming out are IntPtr decoded by Utf8.FromNative, never a `string`
//     return type (the marshaller would free the library's static strings);
//   - callbacks are IntPtr fields in NativeCallbacks, filled from delegates to static methods
//     (see Trampolines in TetherClient.cs) that are kept alive in static fields for the life
//     of the process.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Tether
{
    internal static class NativeMethods
    {
        // iOS links plugins statically into the player: symbols are then found in the process
        // itself ("__Internal"). Everywhere else the dynamic library is libtether.so /
        // libtether.dylib / tether.dll, which Unity resolves from the package's Plugins folder.
#if UNITY_IOS && !UNITY_EDITOR
        internal const string Lib = "__Internal";
#else
        internal const string Lib = "tether";
#endif

        internal const CallingConvention Cc = CallingConvention.Cdecl;

        // ---- strings and version ----
        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern IntPtr tether_version();

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern IntPtr tether_status_str(int status);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern IntPtr tether_state_str(int state);

        // ---- config ----
        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern IntPtr tether_config_new();

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern void tether_config_free(IntPtr config);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_last_error(IntPtr config, byte[] buf, UIntPtr len, out UIntPtr needed);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_validate(IntPtr config);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_url(IntPtr config, byte[] url);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_add_header(IntPtr config, byte[] name, byte[] value);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_add_subprotocol(IntPtr config, byte[] protocol);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_add_resolve(IntPtr config, byte[] host, byte[] address);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_connect_timeout_ms(IntPtr config, ulong ms);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_happy_eyeballs_delay_ms(IntPtr config, ulong ms);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_tls_roots(IntPtr config, int roots);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_tls_ca_file(IntPtr config, byte[] path);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_tls_ca_pem(IntPtr config, byte[] pem, UIntPtr len);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_danger_accept_invalid_certs(IntPtr config, byte accept);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_reconnect_enabled(IntPtr config, byte enabled);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_backoff(IntPtr config, ulong initialMs, ulong maxMs, double multiplier);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_max_reconnect_attempts(IntPtr config, uint attempts);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_max_retry_duration_ms(IntPtr config, ulong ms);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_min_uptime_ms(IntPtr config, ulong ms);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_heartbeat(IntPtr config, ulong intervalMs, ulong timeoutMs);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_outbox_limits(IntPtr config, UIntPtr maxMessages, UIntPtr maxBytes);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_overflow_policy(IntPtr config, int policy, ulong waitTimeoutMs);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_queue_while_disconnected(IntPtr config, byte queue);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_max_outbound_message_size(IntPtr config, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_max_inbound_size(IntPtr config, UIntPtr messageBytes, UIntPtr frameBytes);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_close_timeout_ms(IntPtr config, ulong ms);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_event_queue_capacity(IntPtr config, UIntPtr capacity);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_dispatch(IntPtr config, int mode);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_protocol(IntPtr config, int protocol);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_session_id(IntPtr config, byte[] id);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_outbox_path(IntPtr config, byte[] path);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_outbox_sync(IntPtr config, int sync);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_auth_token(IntPtr config, byte[] token);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_signing_key(IntPtr config, byte[] key, UIntPtr len);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_compression_threshold(IntPtr config, UIntPtr bytes);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_ack_timeout(IntPtr config, ulong timeoutMs, uint retries);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_config_set_handshake_timeout_ms(IntPtr config, ulong ms);

        // ---- client ----
        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_new(IntPtr config, ref NativeCallbacks callbacks, IntPtr userData, IntPtr userDataFree, out IntPtr client);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern void tether_client_free(IntPtr client);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_send_text(IntPtr client, byte[] text, UIntPtr len, out ulong id);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_send_binary(IntPtr client, IntPtr data, UIntPtr len, out ulong id);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_close(IntPtr client, ushort code, byte[] reason);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_state(IntPtr client);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_stats(IntPtr client, ref NativeStats stats);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_last_error(IntPtr client, byte[] buf, UIntPtr len, out UIntPtr needed);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_poll(IntPtr client, UIntPtr maxEvents, out UIntPtr ran);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_poll_timeout(IntPtr client, UIntPtr maxEvents, ulong timeoutMs, out UIntPtr ran);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_client_delivery_status(IntPtr client, ulong id, out int delivery);

        [DllImport(Lib, CallingConvention = Cc, ExactSpelling = true)]
        internal static extern int tether_runtime_set_worker_threads(UIntPtr count);
    }

    // ---- C constants that have no public enum (tether.h) ----
    internal static class NativeConst
    {
        internal const int DispatchPoll = 1; // TETHER_DISPATCH_POLL
        internal const int MessageText = 1;  // TETHER_MESSAGE_TEXT
    }

    // ---- callback signatures (tether_callbacks) ----
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeStateFn(IntPtr userData, int from, int to);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeVoidFn(IntPtr userData);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeMessageFn(IntPtr userData, IntPtr data, UIntPtr len, int kind);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeCloseFn(IntPtr userData, ushort code, IntPtr reason, byte willReconnect);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeReconnectingFn(IntPtr userData, uint attempt, ulong delayMs);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeIdFn(IntPtr userData, ulong id);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeSendFailedFn(IntPtr userData, ulong id, int status, IntPtr reason);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeErrorFn(IntPtr userData, int status, IntPtr message);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeClosedFn(IntPtr userData, ushort code, IntPtr reason, UIntPtr undelivered);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeSessionResetFn(IntPtr userData, IntPtr reset);

    /// <summary>tether_callbacks: struct_size, then one function pointer per callback, in the
    /// header's order. struct_size is Marshal.SizeOf of this struct (TETHER_CALLBACKS_INIT).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeCallbacks
    {
        public UIntPtr struct_size;
        public IntPtr on_state;
        public IntPtr on_open;
        public IntPtr on_ready;
        public IntPtr on_message;
        public IntPtr on_close;
        public IntPtr on_reconnecting;
        public IntPtr on_written;
        public IntPtr on_acked;
        public IntPtr on_send_failed;
        public IntPtr on_error;
        public IntPtr on_closed;
        public IntPtr on_session_reset;
    }

    /// <summary>tether_stats, field for field (TETHER_STATS_INIT: struct_size set, rest zero).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeStats
    {
        public UIntPtr struct_size;
        public ulong messages_sent;
        public ulong bytes_sent;
        public ulong messages_received;
        public ulong bytes_received;
        public ulong reconnects;
        public ulong send_failures;
        public ulong messages_acked;
        public ulong messages_resent;
        public ulong duplicates_dropped;
        public ulong inbound_rejected;
        public ulong awaiting_ack;
        public ulong outbox_messages;
        public ulong outbox_bytes;
        public ulong outbox_high_water_messages;
        public ulong outbox_high_water_bytes;
        public ulong last_rtt_us;
        public ulong last_app_rtt_us;
    }

    /// <summary>tether_session_reset (borrowed by on_session_reset for the call). C bool is one
    /// byte: the three flags are bytes, not C# bools.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeSessionReset
    {
        public byte server_lost_state;
        public byte client_state_lost;
        public byte inbound_may_repeat;
        public ulong acked_at_risk_first;
        public ulong acked_at_risk_last;
        public ulong resends_may_duplicate_first;
        public ulong resends_may_duplicate_last;
        public uint server_revision;
    }

    /// <summary>Explicit UTF-8 in both directions (no reliance on a runtime's default string
    /// marshalling).</summary>
    internal static class Utf8
    {
        private static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8 bytes of <paramref name="s"/> (null stays null). A string
        /// with an embedded NUL would be cut short by C: refused.</summary>
        internal static byte[] Z(string s, string what)
        {
            if (s == null) return null;
            if (s.IndexOf('\0') >= 0)
                throw new ArgumentException(what + " contains a NUL character", what);
            byte[] bytes;
            try
            {
                int n = Strict.GetByteCount(s);
                bytes = new byte[n + 1];
                Strict.GetBytes(s, 0, s.Length, bytes, 0);
            }
            catch (EncoderFallbackException e)
            {
                throw new ArgumentException(what + " is not valid UTF-16 (a lone surrogate)", what, e);
            }
            return bytes;
        }

        /// <summary>A NUL-terminated UTF-8 string owned by the library (borrowed), as a string;
        /// IntPtr.Zero gives "".</summary>
        internal static string FromNative(IntPtr p)
        {
            if (p == IntPtr.Zero) return "";
            int len = 0;
            while (Marshal.ReadByte(p, len) != 0) len++;
            if (len == 0) return "";
            var bytes = new byte[len];
            Marshal.Copy(p, bytes, 0, len);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>UTF-8 encoding of a message text into a per-thread scratch buffer (no
        /// allocation per send once it is large enough; texts over 64 KiB get their own array,
        /// so a thread does not keep a huge buffer for ever). Returns the buffer, and the byte
        /// count in <paramref name="count"/>.</summary>
        internal static byte[] Encode(string s, ref byte[] scratch, out int count)
        {
            try
            {
                int max = s.Length * 3; // a UTF-16 code unit is at most 3 UTF-8 bytes
                if (max > 65536)
                {
                    var own = new byte[Strict.GetByteCount(s)];
                    count = Strict.GetBytes(s, 0, s.Length, own, 0);
                    return own;
                }
                if (scratch == null || scratch.Length < max) scratch = new byte[Math.Max(256, max)];
                count = Strict.GetBytes(s, 0, s.Length, scratch, 0);
                return scratch;
            }
            catch (EncoderFallbackException e)
            {
                throw new ArgumentException("text is not valid UTF-16 (a lone surrogate)", "text", e);
            }
        }
    }
}
