// A facade with NativeWebSocket's shape (github.com/endel/NativeWebSocket: class WebSocket),
// so a project that uses it switches by changing `using NativeWebSocket;` to `using Tether;`
// and `WebSocket` to `TetherWebSocket`. Handlers keep their signatures; the differences are
// where Tether keeps a promise NativeWebSocket does not:
//   - the link reconnects by itself: OnOpen is raised on every (re)connect, OnClose only once,
//     when the socket is closed for good (Close(), a final refusal, or retries exhausted);
//     link drops are reported to OnError and, with their code, to OnDisconnect;
//   - Send/SendText queue while disconnected and return a Task that completes when the message
//     was written to the socket (NativeWebSocket's completes at once, whether it went out or
//     not), and faults if it never will be;
//   - every handler runs inside DispatchMessageQueue(), on the thread calling it (Update()),
//     on every platform, IL2CPP included.
using System;
using System.Collections.Generic;
using System.Threading.Tasks;

namespace Tether
{
    /// <summary>NativeWebSocket's WebSocketState.</summary>
    public enum WebSocketState
    {
        /// <summary>Connecting, reconnecting, or (envelope mode) in the handshake.</summary>
        Connecting,
        /// <summary>Ready: messages flow.</summary>
        Open,
        /// <summary>Close() was called; draining.</summary>
        Closing,
        /// <summary>Closed for good (or not connected yet).</summary>
        Closed,
    }

    /// <summary>NativeWebSocket's WebSocketCloseCode (RFC 6455 close codes).</summary>
    public enum WebSocketCloseCode
    {
        /// <summary>No code.</summary>
        NotSet = 0,
        /// <summary>1000.</summary>
        Normal = 1000,
        /// <summary>1001.</summary>
        Away = 1001,
        /// <summary>1002.</summary>
        ProtocolError = 1002,
        /// <summary>1003.</summary>
        UnsupportedData = 1003,
        /// <summary>1004.</summary>
        Undefined = 1004,
        /// <summary>1005.</summary>
        NoStatus = 1005,
        /// <summary>1006: the link broke without a close frame.</summary>
        Abnormal = 1006,
        /// <summary>1007.</summary>
        InvalidData = 1007,
        /// <summary>1008.</summary>
        PolicyViolation = 1008,
        /// <summary>1009.</summary>
        TooBig = 1009,
        /// <summary>1010.</summary>
        MandatoryExtension = 1010,
        /// <summary>1011.</summary>
        ServerError = 1011,
        /// <summary>1015.</summary>
        TlsHandshakeFailure = 1015,
    }

    /// <summary>OnOpen handler (NativeWebSocket's signature).</summary>
    public delegate void WebSocketOpenEventHandler();
    /// <summary>OnMessage handler: the payload, text (UTF-8) or binary.</summary>
    public delegate void WebSocketMessageEventHandler(byte[] data);
    /// <summary>OnError handler: what went wrong, in words.</summary>
    public delegate void WebSocketErrorEventHandler(string errorMsg);
    /// <summary>OnClose handler: the final close code.</summary>
    public delegate void WebSocketCloseEventHandler(WebSocketCloseCode closeCode);

    /// <summary>A <see cref="TetherClient"/> behind NativeWebSocket's API (Connect, OnOpen,
    /// OnMessage, OnError, OnClose, Send, SendText, DispatchMessageQueue, Close, State).</summary>
    public sealed class TetherWebSocket : IDisposable
    {
        private readonly TetherOptions options;
        private TetherClient client;
        private TaskCompletionSource<bool> connectTask;
        private bool closeRaised;

        /// <summary>Raised when the link is ready (after every reconnect too).</summary>
        public event WebSocketOpenEventHandler OnOpen;
        /// <summary>A message from the server, text or binary.</summary>
        public event WebSocketMessageEventHandler OnMessage;
        /// <summary>A failure in words (connect failed, link lost, a message not delivered, ...).</summary>
        public event WebSocketErrorEventHandler OnError;
        /// <summary>Closed for good (once).</summary>
        public event WebSocketCloseEventHandler OnClose;
        /// <summary>Tether only: a link ended; the client reconnects if the flag is true.</summary>
        public event Action<WebSocketCloseCode, bool> OnDisconnect;

        /// <summary>As NativeWebSocket: <paramref name="url"/> and optional upgrade headers.</summary>
        public TetherWebSocket(string url, Dictionary<string, string> headers = null)
            : this(url, (List<string>)null, headers) { }

        /// <summary>As NativeWebSocket: one subprotocol.</summary>
        public TetherWebSocket(string url, string subprotocol, Dictionary<string, string> headers = null)
            : this(url, subprotocol == null ? null : new List<string> { subprotocol }, headers) { }

        /// <summary>As NativeWebSocket: several subprotocols.</summary>
        public TetherWebSocket(string url, List<string> subprotocols, Dictionary<string, string> headers = null)
        {
            options = new TetherOptions(url);
            if (headers != null) foreach (var h in headers) options.AddHeader(h.Key, h.Value);
            if (subprotocols != null) foreach (var p in subprotocols) options.AddSubprotocol(p);
        }

        /// <summary>Tether's full options (envelope mode, limits, backoff, ...).</summary>
        public TetherWebSocket(TetherOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            this.options = options;
        }

        /// <summary>The client underneath (receipts, stats, acks), once connected.</summary>
        public TetherClient Client { get { return client; } }

        /// <summary>NativeWebSocket's states, from Tether's.</summary>
        public WebSocketState State
        {
            get
            {
                if (client == null) return WebSocketState.Closed;
                switch (client.State)
                {
                    case ClientState.Ready: return WebSocketState.Open;
                    case ClientState.Closing: return WebSocketState.Closing;
                    case ClientState.Closed: return WebSocketState.Closed;
                    default: return WebSocketState.Connecting;
                }
            }
        }

        /// <summary>Start connecting. As with NativeWebSocket, the Task completes when the socket
        /// is closed for good (so `await Connect()` waits for the end); OnOpen tells when it is
        /// ready. A bad URL or option raises OnError and faults the Task.</summary>
        public Task Connect()
        {
            if (client != null) return connectTask.Task;
            connectTask = new TaskCompletionSource<bool>();
            try
            {
                client = new TetherClient(options);
            }
            catch (TetherException e)
            {
                var h = OnError;
                if (h != null) h(e.Message);
                connectTask.SetException(e);
                return connectTask.Task;
            }
            client.Ready += () => { var h = OnOpen; if (h != null) h(); };
            client.MessageReceived += m => { var h = OnMessage; if (h != null) h(m.Data); };
            client.Error += e => { var h = OnError; if (h != null) h(e.Message); };
            client.SendFailed += (id, e) => { var h = OnError; if (h != null) h(e.Message); };
            client.Disconnected += (code, reason, again) => { var h = OnDisconnect; if (h != null) h((WebSocketCloseCode)code, again); };
            client.Closed += (code, reason, undelivered) => RaiseClose((WebSocketCloseCode)code);
            client.Completion.ContinueWith(_ => connectTask.TrySetResult(true), TaskContinuationOptions.ExecuteSynchronously);
            return connectTask.Task;
        }

        private void RaiseClose(WebSocketCloseCode code)
        {
            if (closeRaised) return;
            closeRaised = true;
            var h = OnClose;
            if (h != null) h(code);
        }

        /// <summary>Queue a binary message; the Task completes once it was written to the socket.</summary>
        public Task Send(byte[] bytes)
        {
            return Started().Send(bytes).Written;
        }

        /// <summary>Queue a text message; the Task completes once it was written to the socket.</summary>
        public Task SendText(string message)
        {
            return Started().SendText(message).Written;
        }

        /// <summary>Raise the pending events; call it every frame from Update().</summary>
        public void DispatchMessageQueue()
        {
            if (client != null) client.DispatchEvents();
        }

        /// <summary>Close gracefully (1000); the Task completes when closed (keep dispatching).</summary>
        public Task Close()
        {
            if (client == null) return Task.FromResult(true);
            return client.Close();
        }

        /// <summary>As NativeWebSocket: stop connecting or close.</summary>
        public void CancelConnection()
        {
            if (client != null) client.Close();
        }

        /// <summary>Free the native client (see TetherClient.Dispose). No handler runs after it:
        /// to see OnClose, Close() and keep dispatching until Connect()'s Task completes.</summary>
        public void Dispose()
        {
            if (client != null) client.Dispose();
        }

        private TetherClient Started()
        {
            if (client == null) throw new InvalidOperationException("call Connect() first");
            return client;
        }
    }
}
