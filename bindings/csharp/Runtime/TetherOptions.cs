// The options of a client: a plain object you fill in, turned into a tether_config by
// TetherClient. A property left null keeps the Rust core's default (the same defaults as the C
// and Python APIs; the values the C setters take in pairs are filled from those defaults when
// you set only one of the pair).
using System;
using System.Collections.Generic;

namespace Tether
{
    /// <summary>How a <see cref="TetherClient"/> connects and behaves. Only <see cref="Url"/> is
    /// required; everything left null keeps Tether's default (see docs/C_API.md for the list).</summary>
    public sealed class TetherOptions
    {
        // The core's defaults, for the C setters that take two or three values at once.
        private const double DefaultBackoffInitialMs = 500, DefaultBackoffMaxMs = 30000, DefaultBackoffMultiplier = 2.0;
        private const double DefaultHeartbeatIntervalMs = 15000, DefaultHeartbeatTimeoutMs = 10000;
        private const long DefaultOutboxMessages = 4096, DefaultOutboxBytes = 16L << 20;
        private const long DefaultInboundMessage = 16L << 20, DefaultInboundFrame = 16L << 20;
        private const double DefaultOverflowWaitMs = 5000, DefaultAckTimeoutMs = 10000;
        private const uint DefaultAckRetries = 2;

        private readonly List<KeyValuePair<string, string>> headers = new List<KeyValuePair<string, string>>();
        private readonly List<string> subprotocols = new List<string>();
        private readonly List<KeyValuePair<string, string>> resolve = new List<KeyValuePair<string, string>>();

        /// <summary>Options for <paramref name="url"/> (ws:// or wss://).</summary>
        public TetherOptions(string url) { Url = url; }

        /// <summary>The server URL: ws:// or wss://, a host, an optional port and path.</summary>
        public string Url { get; set; }

        /// <summary>Raw WebSocket (default) or the Tether envelope with acks.</summary>
        public TetherProtocol Protocol { get; set; }

        /// <summary>Add an HTTP header to the upgrade request (e.g. Authorization).</summary>
        public TetherOptions AddHeader(string name, string value) { headers.Add(new KeyValuePair<string, string>(name, value)); return this; }

        /// <summary>Offer a subprotocol (Sec-WebSocket-Protocol); may be called several times.</summary>
        public TetherOptions AddSubprotocol(string protocol) { subprotocols.Add(protocol); return this; }

        /// <summary>Connect to <paramref name="address"/> (an IP, or IP:port) for <paramref name="host"/>
        /// instead of asking DNS (like curl --resolve).</summary>
        public TetherOptions AddResolve(string host, string address) { resolve.Add(new KeyValuePair<string, string>(host, address)); return this; }

        /// <summary>Time for TCP connect, TLS and the HTTP upgrade together (default 10 s).</summary>
        public TimeSpan? ConnectTimeout { get; set; }
        /// <summary>Happy Eyeballs delay between address attempts (default 250 ms).</summary>
        public TimeSpan? HappyEyeballsDelay { get; set; }

        /// <summary>Reconnect automatically (default true).</summary>
        public bool? Reconnect { get; set; }
        /// <summary>First backoff delay bound (default 500 ms); the delay before attempt n is
        /// uniform in [0, min(max, initial * multiplier^(n-1))].</summary>
        public TimeSpan? BackoffInitial { get; set; }
        /// <summary>Largest backoff delay bound (default 30 s).</summary>
        public TimeSpan? BackoffMax { get; set; }
        /// <summary>Backoff growth factor (default 2.0).</summary>
        public double? BackoffMultiplier { get; set; }
        /// <summary>Reconnect attempts per outage; 0 (default) is unlimited.</summary>
        public uint? MaxReconnectAttempts { get; set; }
        /// <summary>Cap on the time spent retrying in one outage; zero (default) is unlimited.</summary>
        public TimeSpan? MaxRetryDuration { get; set; }
        /// <summary>How long a link must stay up before the backoff resets (default 5 s).</summary>
        public TimeSpan? MinUptime { get; set; }

        /// <summary>A WebSocket ping every interval (default 15 s; zero turns the heartbeat off).</summary>
        public TimeSpan? HeartbeatInterval { get; set; }
        /// <summary>Nothing received within this long after a ping: the link is dead (default 10 s).</summary>
        public TimeSpan? HeartbeatTimeout { get; set; }

        /// <summary>Outbox bound in messages (default 4096).</summary>
        public long? OutboxMaxMessages { get; set; }
        /// <summary>Outbox bound in bytes (default 16 MiB).</summary>
        public long? OutboxMaxBytes { get; set; }
        /// <summary>What a send does when the outbox is full (default Reject).</summary>
        public OverflowPolicy? Overflow { get; set; }
        /// <summary>How long OverflowPolicy.Wait blocks (default 5 s).</summary>
        public TimeSpan? OverflowWaitTimeout { get; set; }
        /// <summary>Queue messages while not ready (default true), or refuse them (TetherNotReadyException).</summary>
        public bool? QueueWhileDisconnected { get; set; }
        /// <summary>Largest message a send accepts (default 4 MiB, at most the outbox byte bound).</summary>
        public long? MaxOutboundMessageSize { get; set; }
        /// <summary>Largest inbound message (default 16 MiB); bigger closes the link with 1009.</summary>
        public long? MaxInboundMessageSize { get; set; }
        /// <summary>Largest inbound frame (default 16 MiB).</summary>
        public long? MaxInboundFrameSize { get; set; }
        /// <summary>Time Close() spends draining and closing (default 5 s). Dispose waits at most
        /// this plus 2 s.</summary>
        public TimeSpan? CloseTimeout { get; set; }
        /// <summary>Events buffered for DispatchEvents before the client stops reading the socket
        /// (backpressure; default 1024).</summary>
        public long? EventQueueCapacity { get; set; }

        /// <summary>Which CAs wss:// trusts (default the system's store).</summary>
        public TlsRoots? TlsRoots { get; set; }
        /// <summary>Trust only the CA certificates in this PEM file.</summary>
        public string TlsCaFile { get; set; }
        /// <summary>Trust only the CA certificates in this PEM text.</summary>
        public string TlsCaPem { get; set; }
        /// <summary>Accept any server certificate. For tests only.</summary>
        public bool DangerAcceptInvalidCerts { get; set; }

        /// <summary>Envelope mode: the session id (1 to 128 printable ASCII characters; default random).</summary>
        public string SessionId { get; set; }
        /// <summary>Keep the outbox in this file (docs/PERSISTENCE.md): queued and unacked messages,
        /// the id sequence and the session survive the app, and a client created again with the
        /// same path resumes the session. Unity: a path under Application.persistentDataPath.</summary>
        public string OutboxPath { get; set; }
        /// <summary>What the persistent outbox makes durable against a machine crash (default Batch).</summary>
        public OutboxSync? OutboxSync { get; set; }
        /// <summary>Envelope mode: the token sent in the handshake.</summary>
        public string AuthToken { get; set; }
        /// <summary>Envelope mode: HMAC-SHA256 signing key for every message in both directions.</summary>
        public byte[] SigningKey { get; set; }
        /// <summary>Envelope mode: compress payloads of at least this many bytes (default 0: never).</summary>
        public long? CompressionThreshold { get; set; }
        /// <summary>Envelope mode: wait this long for an ack before writing again (default 10 s).</summary>
        public TimeSpan? AckTimeout { get; set; }
        /// <summary>Envelope mode: fail a message after this many ack timeouts (default 2).</summary>
        public uint? AckRetries { get; set; }
        /// <summary>Envelope mode: time allowed for the handshake (default 10 s).</summary>
        public TimeSpan? HandshakeTimeout { get; set; }

        private static ulong Ms(TimeSpan t)
        {
            if (t < TimeSpan.Zero) throw new ArgumentOutOfRangeException("t", "a duration must not be negative");
            return (ulong)Math.Round(t.TotalMilliseconds);
        }

        private static ulong Ms(TimeSpan? t, double dflt) { return t.HasValue ? Ms(t.Value) : (ulong)dflt; }

        private static UIntPtr Size(long v, string what)
        {
            if (v < 0) throw new ArgumentOutOfRangeException(what, what + " must not be negative");
            if (UIntPtr.Size == 4 && v > uint.MaxValue) throw new ArgumentOutOfRangeException(what, what + " is too large for this platform");
            return (UIntPtr)(ulong)v;
        }

        /// <summary>A new native config holding these options, in poll mode (the binding always
        /// dispatches from DispatchEvents). The caller frees it. Throws what a setter refuses.</summary>
        internal IntPtr Build()
        {
            IntPtr cfg = NativeMethods.tether_config_new();
            if (cfg == IntPtr.Zero) throw new TetherException(TetherStatus.Internal, "tether_config_new failed");
            try
            {
                Apply(cfg);
                Check(cfg, NativeMethods.tether_config_set_dispatch(cfg, NativeConst.DispatchPoll));
                Check(cfg, NativeMethods.tether_config_validate(cfg));
                return cfg;
            }
            catch
            {
                NativeMethods.tether_config_free(cfg);
                throw;
            }
        }

        private void Apply(IntPtr c)
        {
            if (Url == null) throw new ArgumentNullException("Url");
            Check(c, NativeMethods.tether_config_set_url(c, Utf8.Z(Url, "Url")));
            foreach (var h in headers) Check(c, NativeMethods.tether_config_add_header(c, Utf8.Z(h.Key, "header name"), Utf8.Z(h.Value ?? "", "header value")));
            foreach (var p in subprotocols) Check(c, NativeMethods.tether_config_add_subprotocol(c, Utf8.Z(p, "subprotocol")));
            foreach (var r in resolve) Check(c, NativeMethods.tether_config_add_resolve(c, Utf8.Z(r.Key, "resolve host"), Utf8.Z(r.Value, "resolve address")));
            if (ConnectTimeout.HasValue) Check(c, NativeMethods.tether_config_set_connect_timeout_ms(c, Ms(ConnectTimeout.Value)));
            if (HappyEyeballsDelay.HasValue) Check(c, NativeMethods.tether_config_set_happy_eyeballs_delay_ms(c, Ms(HappyEyeballsDelay.Value)));
            if (Reconnect.HasValue) Check(c, NativeMethods.tether_config_set_reconnect_enabled(c, (byte)(Reconnect.Value ? 1 : 0)));
            if (BackoffInitial.HasValue || BackoffMax.HasValue || BackoffMultiplier.HasValue)
                Check(c, NativeMethods.tether_config_set_backoff(c, Ms(BackoffInitial, DefaultBackoffInitialMs), Ms(BackoffMax, DefaultBackoffMaxMs), BackoffMultiplier ?? DefaultBackoffMultiplier));
            if (MaxReconnectAttempts.HasValue) Check(c, NativeMethods.tether_config_set_max_reconnect_attempts(c, MaxReconnectAttempts.Value));
            if (MaxRetryDuration.HasValue) Check(c, NativeMethods.tether_config_set_max_retry_duration_ms(c, Ms(MaxRetryDuration.Value)));
            if (MinUptime.HasValue) Check(c, NativeMethods.tether_config_set_min_uptime_ms(c, Ms(MinUptime.Value)));
            if (HeartbeatInterval.HasValue || HeartbeatTimeout.HasValue)
                Check(c, NativeMethods.tether_config_set_heartbeat(c, Ms(HeartbeatInterval, DefaultHeartbeatIntervalMs), Ms(HeartbeatTimeout, DefaultHeartbeatTimeoutMs)));
            if (OutboxMaxMessages.HasValue || OutboxMaxBytes.HasValue)
                Check(c, NativeMethods.tether_config_set_outbox_limits(c, Size(OutboxMaxMessages ?? DefaultOutboxMessages, "OutboxMaxMessages"), Size(OutboxMaxBytes ?? DefaultOutboxBytes, "OutboxMaxBytes")));
            if (Overflow.HasValue || OverflowWaitTimeout.HasValue)
                Check(c, NativeMethods.tether_config_set_overflow_policy(c, (int)(Overflow ?? OverflowPolicy.Reject), Ms(OverflowWaitTimeout, DefaultOverflowWaitMs)));
            if (QueueWhileDisconnected.HasValue) Check(c, NativeMethods.tether_config_set_queue_while_disconnected(c, (byte)(QueueWhileDisconnected.Value ? 1 : 0)));
            if (MaxOutboundMessageSize.HasValue) Check(c, NativeMethods.tether_config_set_max_outbound_message_size(c, Size(MaxOutboundMessageSize.Value, "MaxOutboundMessageSize")));
            if (MaxInboundMessageSize.HasValue || MaxInboundFrameSize.HasValue)
                Check(c, NativeMethods.tether_config_set_max_inbound_size(c, Size(MaxInboundMessageSize ?? DefaultInboundMessage, "MaxInboundMessageSize"), Size(MaxInboundFrameSize ?? DefaultInboundFrame, "MaxInboundFrameSize")));
            if (CloseTimeout.HasValue) Check(c, NativeMethods.tether_config_set_close_timeout_ms(c, Ms(CloseTimeout.Value)));
            if (EventQueueCapacity.HasValue) Check(c, NativeMethods.tether_config_set_event_queue_capacity(c, Size(EventQueueCapacity.Value, "EventQueueCapacity")));
            ApplyTls(c);
            ApplyEnvelope(c);
        }

        private void ApplyTls(IntPtr c)
        {
            if (TlsRoots.HasValue) Check(c, NativeMethods.tether_config_set_tls_roots(c, (int)TlsRoots.Value));
            if (TlsCaFile != null) Check(c, NativeMethods.tether_config_set_tls_ca_file(c, Utf8.Z(TlsCaFile, "TlsCaFile")));
            if (TlsCaPem != null)
            {
                byte[] pem = Utf8.Z(TlsCaPem, "TlsCaPem");
                Check(c, NativeMethods.tether_config_set_tls_ca_pem(c, pem, (UIntPtr)(pem.Length - 1)));
            }
            if (DangerAcceptInvalidCerts) Check(c, NativeMethods.tether_config_set_danger_accept_invalid_certs(c, 1));
        }

        private void ApplyEnvelope(IntPtr c)
        {
            Check(c, NativeMethods.tether_config_set_protocol(c, (int)Protocol));
            if (SessionId != null) Check(c, NativeMethods.tether_config_set_session_id(c, Utf8.Z(SessionId, "SessionId")));
            if (OutboxPath != null) Check(c, NativeMethods.tether_config_set_outbox_path(c, Utf8.Z(OutboxPath, "OutboxPath")));
            if (OutboxSync.HasValue) Check(c, NativeMethods.tether_config_set_outbox_sync(c, (int)OutboxSync.Value));
            if (AuthToken != null) Check(c, NativeMethods.tether_config_set_auth_token(c, Utf8.Z(AuthToken, "AuthToken")));
            if (SigningKey != null) Check(c, NativeMethods.tether_config_set_signing_key(c, SigningKey, (UIntPtr)SigningKey.Length));
            if (CompressionThreshold.HasValue) Check(c, NativeMethods.tether_config_set_compression_threshold(c, Size(CompressionThreshold.Value, "CompressionThreshold")));
            if (AckTimeout.HasValue || AckRetries.HasValue)
                Check(c, NativeMethods.tether_config_set_ack_timeout(c, Ms(AckTimeout, DefaultAckTimeoutMs), AckRetries ?? DefaultAckRetries));
            if (HandshakeTimeout.HasValue) Check(c, NativeMethods.tether_config_set_handshake_timeout_ms(c, Ms(HandshakeTimeout.Value)));
        }

        /// <summary>Throw the exception for a failed config call, with the config's message.</summary>
        internal static void Check(IntPtr cfg, int status)
        {
            if (status != 0) throw TetherException.FromStatus((TetherStatus)status, ConfigError(cfg));
        }

        internal static string ConfigError(IntPtr cfg)
        {
            UIntPtr needed;
            NativeMethods.tether_config_last_error(cfg, null, UIntPtr.Zero, out needed);
            ulong n = (ulong)needed;
            if (n <= 1 || n > 1 << 20) return "";
            var buf = new byte[n];
            NativeMethods.tether_config_last_error(cfg, buf, (UIntPtr)n, out needed);
            return DecodeZ(buf);
        }

        internal static string DecodeZ(byte[] buf)
        {
            int len = Array.IndexOf(buf, (byte)0);
            if (len < 0) len = buf.Length;
            return System.Text.Encoding.UTF8.GetString(buf, 0, len);
        }
    }
}
