// Errors as exceptions: one small hierarchy, mapped from tether_status (the same kinds as the
// Python binding's: ConfigError, InvalidArgument, ConnectError, ClosedError, NotReadyError,
// QueueFullError, MessageTooLarge, DeliveryFailed, ProtocolError, NotSupportedError). Every
// class carries the native Status, so code can also switch on it. The names all start with
// "Tether" so that none collides with System's (TimeoutException, NotSupportedException).
using System;

namespace Tether
{
    /// <summary>The base of every error Tether reports. <see cref="Status"/> is the C API's
    /// tether_status code (see include/tether.h), <see cref="Exception.Message"/> the details.</summary>
    public class TetherException : Exception
    {
        /// <summary>The tether_status code (TetherStatus.Ok only for a TetherHandlerException: not a failure of Tether).</summary>
        public TetherStatus Status { get; private set; }

        /// <summary>The short static description of <see cref="Status"/> (tether_status_str).</summary>
        public string StatusName { get { return TetherException.Describe(Status); } }

        /// <summary>An error of kind <paramref name="status"/> with the details in <paramref name="message"/>.</summary>
        public TetherException(TetherStatus status, string message) : base(message) { Status = status; }

        /// <summary>An error of kind <paramref name="status"/> caused by <paramref name="inner"/>.</summary>
        public TetherException(TetherStatus status, string message, Exception inner) : base(message, inner) { Status = status; }

        /// <summary>The library's description of a status code ("unknown status" for others).</summary>
        public static string Describe(TetherStatus status)
        {
            return Utf8.FromNative(NativeMethods.tether_status_str((int)status));
        }

        /// <summary>The exception class for a status (what a failed call throws, and what the
        /// Error event hands over for asynchronous failures).</summary>
        public static TetherException FromStatus(TetherStatus status, string message)
        {
            if (string.IsNullOrEmpty(message)) message = Describe(status);
            switch (status)
            {
                case TetherStatus.InvalidUrl:
                case TetherStatus.InvalidConfig:
                    return new TetherConfigException(status, message);
                case TetherStatus.NullParameter:
                case TetherStatus.InvalidArgument:
                    return new TetherArgumentException(status, message);
                case TetherStatus.QueueFull:
                    return new TetherQueueFullException(status, message);
                case TetherStatus.TooLarge:
                    return new TetherMessageTooLargeException(status, message);
                case TetherStatus.Closed:
                case TetherStatus.InvalidHandle:
                    return new TetherClosedException(status, message);
                case TetherStatus.NotReady:
                    return new TetherNotReadyException(status, message);
                case TetherStatus.NotSupported:
                    return new TetherNotSupportedException(status, message);
                case TetherStatus.Timeout:
                    return new TetherTimeoutException(status, message);
                case TetherStatus.ConnectFailed:
                case TetherStatus.RetriesExhausted:
                case TetherStatus.Proxy:
                case TetherStatus.Credentials:
                    return new TetherConnectException(status, message);
                case TetherStatus.ConnectionLost:
                case TetherStatus.HeartbeatTimeout:
                    return new TetherConnectionLostException(status, message);
                case TetherStatus.Protocol:
                case TetherStatus.Handshake:
                case TetherStatus.Rejected:
                case TetherStatus.InboundRejected:
                    return new TetherProtocolException(status, message);
                default:
                    return new TetherException(status, message);
            }
        }
    }

    /// <summary>A URL or option value was refused (TETHER_ERR_INVALID_URL, _INVALID_CONFIG); the
    /// message names the option.</summary>
    public class TetherConfigException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherConfigException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>An argument was refused (TETHER_ERR_INVALID_ARGUMENT, _NULL_PARAMETER).</summary>
    public class TetherArgumentException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherArgumentException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>The outbox is full (TETHER_ERR_QUEUE_FULL): nothing was queued.</summary>
    public class TetherQueueFullException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherQueueFullException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>A message is over the configured size limit (TETHER_ERR_TOO_LARGE).</summary>
    public class TetherMessageTooLargeException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherMessageTooLargeException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>The client is closed, closing or disposed (TETHER_ERR_CLOSED, _INVALID_HANDLE).</summary>
    public class TetherClosedException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherClosedException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>Not ready, and queueing while disconnected is off (TETHER_ERR_NOT_READY).</summary>
    public class TetherNotReadyException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherNotReadyException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>The operation needs envelope mode (acks in raw mode: TETHER_ERR_NOT_SUPPORTED).</summary>
    public class TetherNotSupportedException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherNotSupportedException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>A bounded wait ended first (TETHER_ERR_TIMEOUT).</summary>
    public class TetherTimeoutException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherTimeoutException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>Asynchronous: a connection attempt failed, or reconnecting gave up
    /// (TETHER_ERR_CONNECT_FAILED, _RETRIES_EXHAUSTED).</summary>
    public class TetherConnectException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherConnectException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>Asynchronous: an open link broke or went silent (TETHER_ERR_CONNECTION_LOST,
    /// _HEARTBEAT_TIMEOUT); the client reconnects unless told otherwise.</summary>
    public class TetherConnectionLostException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherConnectionLostException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>Asynchronous: the server broke the WebSocket or envelope protocol, failed or
    /// rejected the handshake, or an inbound envelope was refused (TETHER_ERR_PROTOCOL,
    /// _HANDSHAKE, _REJECTED, _INBOUND_REJECTED).</summary>
    public class TetherProtocolException : TetherException
    {
        /// <inheritdoc cref="TetherException(int, string)"/>
        public TetherProtocolException(TetherStatus status, string message) : base(status, message) { }
    }

    /// <summary>A message will never be delivered (its on_send_failed): the reason is
    /// <see cref="TetherException.Status"/> (TETHER_ERR_CLOSED, _DROPPED, _CONNECTION_FAILED,
    /// _ACK_TIMEOUT, _REJECTED, or _TOO_LARGE) and the message. Faults a receipt's tasks.</summary>
    public class TetherDeliveryFailedException : TetherException
    {
        /// <summary>The id of the message that failed.</summary>
        public ulong MessageId { get; private set; }

        /// <summary>Message <paramref name="id"/> failed with <paramref name="status"/>.</summary>
        public TetherDeliveryFailedException(ulong id, TetherStatus status, string reason)
            : base(status, "message " + id + " not delivered: " + reason)
        {
            MessageId = id;
        }
    }

    /// <summary>An exception thrown by one of your event handlers (or Task continuations run by
    /// the dispatch), caught before it could unwind into native code. Raised from
    /// DispatchEvents() when nothing is subscribed to TetherClient.HandlerException.</summary>
    public class TetherHandlerException : TetherException
    {
        /// <summary>How many handler exceptions the dispatch call caught (the first is the
        /// InnerException).</summary>
        public int Count { get; private set; }

        /// <summary>Wraps the first of <paramref name="count"/> exceptions caught in one dispatch.</summary>
        public TetherHandlerException(Exception first, int count)
            : base(TetherStatus.Ok, "an event handler threw " + first.GetType().Name + ": " + first.Message
                      + (count > 1 ? " (and " + (count - 1) + " more in the same dispatch)" : ""), first)
        {
            Count = count;
        }
    }
}
