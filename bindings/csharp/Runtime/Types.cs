// Public value types: statuses, states, messages, stats, session resets. The numeric values are
// those of include/tether.h (append-only there), so a cast to or from int is the C value.
using System;
using System.Text;

namespace Tether
{
    /// <summary>tether_status: the result of every fallible call, and the kind of an
    /// asynchronous failure (see include/tether.h for each value's meaning).</summary>
    public enum TetherStatus
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>A required pointer was NULL (a bug in this binding if you see it).</summary>
        NullParameter = 1,
        /// <summary>A bug inside Tether, caught at the boundary; the client stays usable.</summary>
        Panic = 2,
        /// <summary>An internal failure (a thread could not start, ...).</summary>
        Internal = 3,
        /// <summary>The URL is not a usable ws:// or wss:// URL.</summary>
        InvalidUrl = 4,
        /// <summary>An option value is out of range or inconsistent.</summary>
        InvalidConfig = 5,
        /// <summary>The outbox is full; nothing was queued.</summary>
        QueueFull = 6,
        /// <summary>A message is over the size limit.</summary>
        TooLarge = 7,
        /// <summary>The client is closed or closing.</summary>
        Closed = 8,
        /// <summary>Not ready, and queueing while disconnected is off.</summary>
        NotReady = 9,
        /// <summary>Needs envelope mode (acks).</summary>
        NotSupported = 10,
        /// <summary>An argument is invalid (close code, reason, ...).</summary>
        InvalidArgument = 11,
        /// <summary>The native handle is not live (freed).</summary>
        InvalidHandle = 12,
        /// <summary>Polling a callback-mode client (never with this binding: it always polls).</summary>
        WrongMode = 13,
        /// <summary>DispatchEvents called from inside one of the client's handlers, or from two
        /// threads at once.</summary>
        Reentrant = 14,
        /// <summary>A bounded wait ended first.</summary>
        Timeout = 15,
        /// <summary>A buffer was too small (handled inside the binding).</summary>
        BufferTooSmall = 16,
        /// <summary>The call is not possible any more (the runtime already started).</summary>
        InvalidState = 17,
        /// <summary>Asynchronous: a connection attempt failed.</summary>
        ConnectFailed = 18,
        /// <summary>Asynchronous: the link broke, or the server closed it abnormally.</summary>
        ConnectionLost = 19,
        /// <summary>Asynchronous: nothing arrived within the heartbeat deadline.</summary>
        HeartbeatTimeout = 20,
        /// <summary>Asynchronous: the server violated the WebSocket protocol.</summary>
        Protocol = 21,
        /// <summary>Asynchronous, envelope mode: the handshake failed or timed out.</summary>
        Handshake = 22,
        /// <summary>Asynchronous, envelope mode: the server rejected the session or a message.</summary>
        Rejected = 23,
        /// <summary>Asynchronous: reconnecting stopped (attempt or time limit).</summary>
        RetriesExhausted = 24,
        /// <summary>Asynchronous: the connection ended for good with the message undelivered.</summary>
        ConnectionFailed = 25,
        /// <summary>Asynchronous: dropped from a full outbox (drop-oldest policy).</summary>
        Dropped = 26,
        /// <summary>Asynchronous, envelope mode: no ack after the configured attempts.</summary>
        AckTimeout = 27,
        /// <summary>Asynchronous, envelope mode: an inbound frame was refused; the link stays up.</summary>
        InboundRejected = 28,
        /// <summary>A proxy refused or failed the connection; the message names the proxy and its answer.</summary>
        Proxy = 29,
        /// <summary>The credentials provider failed an attempt (retried like a failed connect).</summary>
        Credentials = 30,
        /// <summary>The persistent outbox file (OutboxPath) could not be used: in use by another
        /// client, damaged, of another session, or an I/O error; the message names the file.</summary>
        Storage = 31,
        /// <summary>Asynchronous: undelivered at close, kept in the persistent outbox for the
        /// next client started with the same OutboxPath.</summary>
        Kept = 32,
    }

    /// <summary>tether_state: where the connection stands.</summary>
    public enum ClientState
    {
        /// <summary>Making a connection (first time or after a backoff delay).</summary>
        Connecting = 0,
        /// <summary>The WebSocket is open; the envelope handshake runs.</summary>
        Open = 1,
        /// <summary>Ready: queued messages flow (raw mode: right after Open).</summary>
        Ready = 2,
        /// <summary>Close() was called: draining the outbox and closing; or reconnecting stopped
        /// and what is left is being failed before Closed.</summary>
        Closing = 3,
        /// <summary>Terminal: the client will not connect again.</summary>
        Closed = 4,
        /// <summary>The link is down; waiting out the backoff delay.</summary>
        Reconnecting = 5,
    }

    /// <summary>tether_protocol: what the client speaks on top of WebSocket.</summary>
    public enum TetherProtocol
    {
        /// <summary>Bare WebSocket messages, to any server; no acks.</summary>
        Raw = 0,
        /// <summary>The Tether envelope (docs/PROTOCOL.md): handshake, acks, resend, de-duplication.</summary>
        Envelope = 1,
    }

    /// <summary>tether_overflow: what a send does when the outbox is full.</summary>
    public enum OverflowPolicy
    {
        /// <summary>Refuse the new message (TetherQueueFullException).</summary>
        Reject = 0,
        /// <summary>Block the sending thread up to a timeout. Never on a game's main thread.</summary>
        Wait = 1,
        /// <summary>Accept it and fail the oldest queued message (TetherStatus.Dropped).</summary>
        DropOldest = 2,
    }

    /// <summary>tether_outbox_sync: what the persistent outbox makes durable against a machine crash
    /// (a killed process loses nothing in any mode).</summary>
    public enum OutboxSync
    {
        /// <summary>No fdatasync: the OS writes the file back in its own time.</summary>
        None = 0,
        /// <summary>Default: one fdatasync per batch, before it goes on the wire.</summary>
        Batch = 1,
        /// <summary>One fdatasync per message, before Send returns its id.</summary>
        Always = 2,
    }

    /// <summary>tether_tls_roots: which CAs wss:// trusts unless a CA file or PEM is given.</summary>
    public enum TlsRoots
    {
        /// <summary>The operating system's store, falling back to the bundled Mozilla roots.</summary>
        System = 0,
        /// <summary>The bundled Mozilla roots: the same on every machine (consoles, mobile).</summary>
        WebPki = 1,
    }

    /// <summary>tether_delivery: where one sent message stands, as the library knows it now.</summary>
    public enum DeliveryStatus
    {
        /// <summary>Not an id this client issued, or too old to remember.</summary>
        Unknown = 0,
        /// <summary>Waiting in the outbox.</summary>
        Queued = 1,
        /// <summary>Written to the socket (envelope mode: awaiting the ack).</summary>
        Written = 2,
        /// <summary>Acknowledged by the server (envelope mode).</summary>
        Acked = 3,
        /// <summary>Will never be delivered.</summary>
        Failed = 4,
    }

    /// <summary>The kind of an inbound message.</summary>
    public enum MessageType
    {
        /// <summary>UTF-8 text.</summary>
        Text = 1,
        /// <summary>Binary.</summary>
        Binary = 2,
    }

    /// <summary>A message from the server. <see cref="Data"/> is a copy that belongs to you (text:
    /// its UTF-8 bytes); <see cref="Text"/> decodes it on first use.</summary>
    public sealed class Message
    {
        private string text;

        /// <summary>Text or binary.</summary>
        public MessageType Type { get; private set; }

        /// <summary>The payload (UTF-8 bytes for text).</summary>
        public byte[] Data { get; private set; }

        /// <summary>True for a text message.</summary>
        public bool IsText { get { return Type == MessageType.Text; } }

        /// <summary>The text (decoded once); null for a binary message.</summary>
        public string Text
        {
            get
            {
                if (Type != MessageType.Text) return null;
                if (text == null) text = Encoding.UTF8.GetString(Data);
                return text;
            }
        }

        /// <summary>A message of <paramref name="type"/> holding <paramref name="data"/> (not copied).</summary>
        public Message(MessageType type, byte[] data)
        {
            Type = type;
            Data = data ?? new byte[0];
        }

        /// <summary>The text, or "binary (N bytes)".</summary>
        public override string ToString()
        {
            return IsText ? Text : "binary (" + Data.Length + " bytes)";
        }
    }

    /// <summary>A snapshot of a client's counters (tether_stats). The same counters the C and
    /// Python APIs report.</summary>
    public struct TetherStats
    {
        /// <summary>Messages written and flushed to the socket.</summary>
        public ulong MessagesSent;
        /// <summary>Payload bytes written and flushed.</summary>
        public ulong BytesSent;
        /// <summary>Data messages received.</summary>
        public ulong MessagesReceived;
        /// <summary>Payload bytes received.</summary>
        public ulong BytesReceived;
        /// <summary>Successful reconnects (opens after the first).</summary>
        public ulong Reconnects;
        /// <summary>Messages reported failed.</summary>
        public ulong SendFailures;
        /// <summary>Envelope mode: messages acknowledged.</summary>
        public ulong MessagesAcked;
        /// <summary>Messages written again (after a reconnect or an ack timeout).</summary>
        public ulong MessagesResent;
        /// <summary>Envelope mode: inbound duplicates dropped.</summary>
        public ulong DuplicatesDropped;
        /// <summary>Envelope mode: inbound frames refused.</summary>
        public ulong InboundRejected;
        /// <summary>Envelope mode: written and awaiting their ack now.</summary>
        public ulong AwaitingAck;
        /// <summary>Messages in the outbox now.</summary>
        public ulong OutboxMessages;
        /// <summary>Bytes in the outbox now.</summary>
        public ulong OutboxBytes;
        /// <summary>Highest outbox depth seen, in messages.</summary>
        public ulong OutboxHighWaterMessages;
        /// <summary>Highest outbox depth seen, in bytes.</summary>
        public ulong OutboxHighWaterBytes;
        /// <summary>Round-trip time of the last answered WebSocket ping (0: none yet).</summary>
        public TimeSpan LastRtt;
        /// <summary>Envelope mode: round-trip time of the last app-level ping (0: none yet).</summary>
        public TimeSpan LastAppRtt;

        internal static TetherStats From(ref NativeStats s)
        {
            return new TetherStats
            {
                MessagesSent = s.messages_sent,
                BytesSent = s.bytes_sent,
                MessagesReceived = s.messages_received,
                BytesReceived = s.bytes_received,
                Reconnects = s.reconnects,
                SendFailures = s.send_failures,
                MessagesAcked = s.messages_acked,
                MessagesResent = s.messages_resent,
                DuplicatesDropped = s.duplicates_dropped,
                InboundRejected = s.inbound_rejected,
                AwaitingAck = s.awaiting_ack,
                OutboxMessages = s.outbox_messages,
                OutboxBytes = s.outbox_bytes,
                OutboxHighWaterMessages = s.outbox_high_water_messages,
                OutboxHighWaterBytes = s.outbox_high_water_bytes,
                LastRtt = TimeSpan.FromTicks((long)s.last_rtt_us * 10),
                LastAppRtt = TimeSpan.FromTicks((long)s.last_app_rtt_us * 10),
            };
        }
    }

    /// <summary>Envelope mode: a side of the session lost its state (tether_session_reset): where
    /// the delivery guarantee has a boundary. Id ranges are First..Last inclusive; First 0 means none.</summary>
    public struct SessionResetInfo
    {
        /// <summary>The server's session state is gone; its messages are numbered anew.</summary>
        public bool ServerLostState;
        /// <summary>The server held this session id for an earlier incarnation of this client,
        /// whose unacknowledged messages are gone.</summary>
        public bool ClientStateLost;
        /// <summary>The server's messages from here on may repeat ones received before.</summary>
        public bool InboundMayRepeat;
        /// <summary>First id reported acked that the server no longer remembers (0: none).</summary>
        public ulong AckedAtRiskFirst;
        /// <summary>Last id of that range.</summary>
        public ulong AckedAtRiskLast;
        /// <summary>First id about to be written again that was written before (0: none).</summary>
        public ulong ResendsMayDuplicateFirst;
        /// <summary>Last id of that range.</summary>
        public ulong ResendsMayDuplicateLast;
        /// <summary>The server's session revision (1 or 2).</summary>
        public uint ServerRevision;

        internal static SessionResetInfo From(ref NativeSessionReset r)
        {
            return new SessionResetInfo
            {
                ServerLostState = r.server_lost_state != 0,
                ClientStateLost = r.client_state_lost != 0,
                InboundMayRepeat = r.inbound_may_repeat != 0,
                AckedAtRiskFirst = r.acked_at_risk_first,
                AckedAtRiskLast = r.acked_at_risk_last,
                ResendsMayDuplicateFirst = r.resends_may_duplicate_first,
                ResendsMayDuplicateLast = r.resends_may_duplicate_last,
                ServerRevision = r.server_revision,
            };
        }
    }
}
