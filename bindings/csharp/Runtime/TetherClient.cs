// TetherClient: one native tether_client in poll mode, its events, receipts and lifetime.
//
// Threading: the native client is created with TETHER_DISPATCH_POLL, so Tether never calls
// managed code on a thread of its own: every event handler runs inside DispatchEvents(), on the
// thread that calls it (a game's main thread, from Update()). Sends, Close, State and Stats may
// be called from any thread. Receipt Tasks and Completion complete on the dispatching thread
// too, after the native poll returned.
//
// Lifetime: the native callbacks find this object through user_data, a *weak* GCHandle, so an
// undisposed client can still be collected; its finalizer then frees the native client (on a
// thread-pool thread: freeing waits for a graceful close, which must not hold up the finalizer
// thread). Dispose frees it at once and releases the handle exactly once (an Interlocked swap
// of the native pointer decides which of Dispose / the finalizer does it).
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using AOT;

namespace Tether
{
    /// <summary>A resilient WebSocket client (reconnect with backoff, heartbeat, a bounded outbox
    /// that never drops a message silently; acks in envelope mode). Create it, subscribe to its
    /// events, and call <see cref="DispatchEvents(int)"/> every frame: that is where (and the
    /// only thread where) the events are raised.</summary>
    public sealed class TetherClient : IDisposable
    {
        /// <summary>The C API version (major.minor) this binding was written against.</summary>
        public const string BindingVersion = "0.1";

        private IntPtr native;            // the tether_client; IntPtr.Zero once freed
        private GCHandle self;            // weak; user_data of the native callbacks
        private readonly bool envelope;
        private readonly object sendLock = new object();   // a send and its receipt's registration
        private readonly object stateLock = new object();  // the receipt tables below, and receipts
        private readonly Dictionary<ulong, Receipt> pending = new Dictionary<ulong, Receipt>();
        private readonly Queue<Receipt> unwritten = new Queue<Receipt>(); // id order
        private readonly Dictionary<ulong, TetherException> earlyFailures = new Dictionary<ulong, TetherException>();
        private readonly HashSet<ulong> earlyAcks = new HashSet<ulong>();
        private ulong lastRegistered, writtenUpTo;
        private int pollThread;           // ManagedThreadId inside DispatchEvents, else 0
        private readonly List<TaskCompletion> deferred = new List<TaskCompletion>();   // poll thread only
        private readonly List<Exception> caught = new List<Exception>();       // poll thread only
        private readonly TaskCompletionSource<bool> completion = new TaskCompletionSource<bool>();
        private bool closedSeen;
        [ThreadStatic] private static byte[] scratch;

        internal static int LiveNativeClients;   // for the tests: native clients alive in this domain
        internal static int FinalizersRun;       // for the tests
        private static string checkedVersion;

        // ---- events (all raised on the thread calling DispatchEvents) ----

        /// <summary>Every state change, from -> to (before Opened / Ready).</summary>
        public event Action<ClientState, ClientState> StateChanged;
        /// <summary>The WebSocket opened (each time, reconnects included).</summary>
        public event Action Opened;
        /// <summary>Ready: queued messages flow (each time, reconnects included).</summary>
        public event Action Ready;
        /// <summary>A message from the server (a copy: keep it as long as you like).</summary>
        public event Action<Message> MessageReceived;
        /// <summary>A link ended: close code (1006 if it broke), reason, and whether the client
        /// will reconnect. The client itself goes on unless the last argument is false.</summary>
        public event Action<ushort, string, bool> Disconnected;
        /// <summary>A reconnect attempt (from 1 in each outage) starts after the delay.</summary>
        public event Action<uint, TimeSpan> Reconnecting;
        /// <summary>Every message with an id up to this one has been written (cumulative).</summary>
        public event Action<ulong> Written;
        /// <summary>Envelope mode: the server acknowledged this message id.</summary>
        public event Action<ulong> Acked;
        /// <summary>A message will never be delivered (exactly once per failed message).</summary>
        public event Action<ulong, TetherDeliveryFailedException> SendFailed;
        /// <summary>An asynchronous failure not tied to one message (connect failed, link lost,
        /// heartbeat timeout, protocol error, ...), as the exception class of its kind.</summary>
        public event Action<TetherException> Error;
        /// <summary>Closed for good: code, reason, and how many messages never went out. Always
        /// the last event.</summary>
        public event Action<ushort, string, int> Closed;
        /// <summary>Envelope mode: a side of the session lost its state (see SessionResetInfo).</summary>
        public event Action<SessionResetInfo> SessionReset;
        /// <summary>An exception thrown by one of your handlers, caught before it could unwind
        /// into native code; raised after the native call returned. With no subscriber,
        /// DispatchEvents throws a TetherHandlerException instead.</summary>
        public event Action<Exception> HandlerException;

        // ---- construction ----

        /// <summary>A raw-mode client for <paramref name="url"/> with default options.</summary>
        public TetherClient(string url) : this(new TetherOptions(url)) { }

        /// <summary>A client with these options; starts connecting in the background at once
        /// (no event is raised before the first DispatchEvents call). Throws
        /// TetherConfigException for a bad URL or option.</summary>
        public TetherClient(TetherOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            RefuseUnsupportedPlatform();
            GC.SuppressFinalize(this); // until there is a native client to free
            CheckVersion();
            envelope = options.Protocol == TetherProtocol.Envelope;
            IntPtr cfg = options.Build();
            try
            {
                self = GCHandle.Alloc(this, GCHandleType.Weak);
                NativeCallbacks callbacks = Trampolines.Table;
                IntPtr client;
                int st = NativeMethods.tether_client_new(cfg, ref callbacks, GCHandle.ToIntPtr(self), IntPtr.Zero, out client);
                if (st != 0)
                {
                    self.Free();
                    throw TetherException.FromStatus((TetherStatus)st, TetherOptions.ConfigError(cfg));
                }
                native = client;
                Track(client, self);
                GC.ReRegisterForFinalize(this);
            }
            finally
            {
                NativeMethods.tether_config_free(cfg);
            }
        }

        private static void RefuseUnsupportedPlatform()
        {
#if UNITY_WEBGL && !UNITY_EDITOR
            // A WebGL player runs in the browser: no threads, no sockets, no native plugins of
            // this kind. Compiling the package there keeps multi-platform projects building.
            throw new PlatformNotSupportedException("Tether needs native threads and sockets: WebGL players have neither (use the browser's WebSocket there)");
#endif
        }

        /// <summary>The version of the loaded native library, e.g. "0.1.0".</summary>
        public static string NativeVersion { get { return Utf8.FromNative(NativeMethods.tether_version()); } }

        private static void CheckVersion()
        {
            if (checkedVersion != null) return;
            string v;
            try
            {
                v = NativeVersion;
            }
            catch (DllNotFoundException e)
            {
                throw new DllNotFoundException("the native library libtether was not found: build it into the package's Plugins folder (make csharp-plugin; see docs/CSHARP.md)", e);
            }
            if (!v.StartsWith(BindingVersion + ".", StringComparison.Ordinal))
                throw new TetherException(TetherStatus.InvalidState, "the native library is version " + v + " but this binding is for " + BindingVersion + ".x: rebuild the plugin (make csharp-plugin)");
            checkedVersion = v;
        }

        /// <summary>Worker threads of Tether's I/O runtime (1 to 64, default 1), shared by every
        /// client of the process; only before the first client is created.</summary>
        public static void SetWorkerThreads(int count)
        {
            if (count < 1) throw new ArgumentOutOfRangeException("count");
            int st = NativeMethods.tether_runtime_set_worker_threads((UIntPtr)(uint)count);
            if (st != 0) throw TetherException.FromStatus((TetherStatus)st, "tether_runtime_set_worker_threads(" + count + ")");
        }

        // ---- state ----

        /// <summary>True in envelope mode.</summary>
        public bool IsEnvelope { get { return envelope; } }

        /// <summary>True once Dispose ran (or the finalizer).</summary>
        public bool IsDisposed { get { return Volatile.Read(ref native) == IntPtr.Zero; } }

        /// <summary>The current state (Closed once disposed). Any thread.</summary>
        public ClientState State
        {
            get
            {
                IntPtr h = Volatile.Read(ref native);
                if (h == IntPtr.Zero) return ClientState.Closed;
                var s = (ClientState)NativeMethods.tether_client_state(h);
                GC.KeepAlive(this);
                return s;
            }
        }

        /// <summary>Completes when the client closed for good (after the Closed event, or at
        /// Dispose). Completes on the dispatching thread.</summary>
        public Task Completion { get { return completion.Task; } }

        /// <summary>A snapshot of the counters. Any thread.</summary>
        public TetherStats GetStats()
        {
            IntPtr h = Handle();
            var s = new NativeStats { struct_size = (UIntPtr)(uint)Marshal.SizeOf(typeof(NativeStats)) };
            int st = NativeMethods.tether_client_stats(h, ref s);
            GC.KeepAlive(this);
            if (st != 0) throw Fail(st, h);
            return TetherStats.From(ref s);
        }

        internal object StateLock { get { return stateLock; } }

        internal DeliveryStatus QueryDelivery(ulong id)
        {
            IntPtr h = Handle();
            int d;
            int st = NativeMethods.tether_client_delivery_status(h, id, out d);
            GC.KeepAlive(this);
            if (st != 0) throw Fail(st, h);
            return (DeliveryStatus)d;
        }

        private IntPtr Handle()
        {
            IntPtr h = Volatile.Read(ref native);
            if (h == IntPtr.Zero) throw new TetherClosedException(TetherStatus.Closed, "the client is disposed");
            return h;
        }

        private static TetherException Fail(int status, IntPtr h)
        {
            return TetherException.FromStatus((TetherStatus)status, ClientError(h));
        }

        private static string ClientError(IntPtr h)
        {
            UIntPtr needed;
            if (NativeMethods.tether_client_last_error(h, null, UIntPtr.Zero, out needed) == (int)TetherStatus.InvalidHandle) return "the client is freed";
            ulong n = (ulong)needed;
            if (n <= 1 || n > 1 << 20) return "";
            var buf = new byte[n];
            NativeMethods.tether_client_last_error(h, buf, (UIntPtr)n, out needed);
            return TetherOptions.DecodeZ(buf);
        }

        // ---- sending ----

        /// <summary>Queue a text message (sent as UTF-8). Any thread; never blocks (except with
        /// OverflowPolicy.Wait) and never raises an event itself. Throws TetherQueueFullException,
        /// TetherMessageTooLargeException, TetherNotReadyException, TetherClosedException.</summary>
        public Receipt SendText(string text)
        {
            if (text == null) throw new ArgumentNullException("text");
            int count;
            byte[] bytes = Utf8.Encode(text, ref scratch, out count);
            lock (sendLock)
            {
                IntPtr h = Handle();
                ulong id;
                int st = NativeMethods.tether_client_send_text(h, bytes, (UIntPtr)(uint)count, out id);
                GC.KeepAlive(this);
                if (st != 0) throw Fail(st, h);
                return Register(id);
            }
        }

        /// <summary>Queue a binary message (the bytes are copied before this returns).</summary>
        public Receipt Send(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            return Send(data, 0, data.Length);
        }

        /// <summary>Queue <paramref name="count"/> bytes of <paramref name="data"/> from
        /// <paramref name="offset"/> as a binary message (copied before this returns).</summary>
        public Receipt Send(byte[] data, int offset, int count)
        {
            if (data == null) throw new ArgumentNullException("data");
            if (offset < 0 || count < 0 || offset > data.Length - count) throw new ArgumentOutOfRangeException("count", "offset and count must lie within data");
            GCHandle pin = GCHandle.Alloc(data, GCHandleType.Pinned);
            try
            {
                IntPtr p = count == 0 ? IntPtr.Zero : Marshal.UnsafeAddrOfPinnedArrayElement(data, offset);
                lock (sendLock)
                {
                    IntPtr h = Handle();
                    ulong id;
                    int st = NativeMethods.tether_client_send_binary(h, p, (UIntPtr)(uint)count, out id);
                    GC.KeepAlive(this);
                    if (st != 0) throw Fail(st, h);
                    return Register(id);
                }
            }
            finally
            {
                pin.Free();
            }
        }

        // A receipt for an accepted id. Sends are serialized (sendLock), so ids register in
        // order; an outcome dispatched between the native send and this registration (a send on
        // another thread than the dispatching one) was parked in early* / writtenUpTo.
        private Receipt Register(ulong id)
        {
            var r = new Receipt(this, id, envelope);
            var none = new List<TaskCompletion>(0); // no Task exists yet: nothing to complete
            lock (stateLock)
            {
                lastRegistered = id;
                bool written = id <= writtenUpTo;
                if (written) r.MarkWritten(none);
                TetherException failure;
                if (earlyFailures.TryGetValue(id, out failure))
                {
                    earlyFailures.Remove(id);
                    r.MarkFailed(failure, none);
                    return r;
                }
                if (earlyAcks.Remove(id))
                {
                    r.MarkAcked(none);
                    return r;
                }
                if (written && !envelope) return r; // raw mode: written is final
                pending[id] = r;
                if (!written) unwritten.Enqueue(r);
            }
            return r;
        }

        /// <summary>Start a graceful close: refuse new sends, drain the outbox (up to the close
        /// timeout), close with <paramref name="code"/> (1000 or 3000-4999) and reason (at most
        /// 123 UTF-8 bytes). Returns at once; keep dispatching until the Closed event /
        /// <see cref="Completion"/>. Closing again does nothing.</summary>
        public Task Close(ushort code = 1000, string reason = "")
        {
            IntPtr h = Volatile.Read(ref native);
            if (h == IntPtr.Zero) return completion.Task;
            int st = NativeMethods.tether_client_close(h, code, Utf8.Z(reason ?? "", "reason"));
            GC.KeepAlive(this);
            if (st != 0 && Volatile.Read(ref native) != IntPtr.Zero) throw Fail(st, h);
            return completion.Task;
        }

        // ---- dispatch ----

        /// <summary>Raise the events pending now (at most <paramref name="maxEvents"/>; 0: all of
        /// them) on this thread, without waiting. Call it from Update(). Returns the number of
        /// events handled; 0 once disposed. Then completes the receipts' Tasks, and reports
        /// exceptions your handlers threw (HandlerException, or a TetherHandlerException thrown
        /// from here). One dispatching thread at a time; not from inside a handler.</summary>
        public int DispatchEvents(int maxEvents = 0) { return Dispatch(maxEvents, -1); }

        /// <summary>Like <see cref="DispatchEvents(int)"/>, but if nothing is pending, wait up to
        /// <paramref name="timeoutMs"/> for the first event (for a loop of your own; never in a
        /// game's Update()).</summary>
        public int DispatchEvents(int maxEvents, int timeoutMs)
        {
            if (timeoutMs < 0) throw new ArgumentOutOfRangeException("timeoutMs");
            return Dispatch(maxEvents, timeoutMs);
        }

        /// <summary>Dispatch until <paramref name="condition"/> holds or <paramref name="timeoutMs"/>
        /// pass (a bounded wait for console programs and tests). Returns the condition's last value.</summary>
        public bool DispatchUntil(Func<bool> condition, int timeoutMs)
        {
            if (condition == null) throw new ArgumentNullException("condition");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                if (condition()) return true;
                long left = timeoutMs - clock.ElapsedMilliseconds;
                if (left <= 0 || IsDisposed) return condition();
                Dispatch(0, (int)Math.Min(left, 50));
            }
        }

        private int Dispatch(int maxEvents, int timeoutMs)
        {
            if (maxEvents < 0) throw new ArgumentOutOfRangeException("maxEvents");
            int me = Thread.CurrentThread.ManagedThreadId;
            int other = Interlocked.CompareExchange(ref pollThread, me, 0);
            if (other == me) throw new TetherException(TetherStatus.Reentrant, "DispatchEvents was called from inside one of this client's event handlers");
            if (other != 0) throw new TetherException(TetherStatus.Reentrant, "another thread is dispatching this client's events");
            UIntPtr ran = UIntPtr.Zero;
            TetherException pollError = null;
            try
            {
                IntPtr h = Volatile.Read(ref native);
                if (h != IntPtr.Zero)
                {
                    int st = timeoutMs < 0
                        ? NativeMethods.tether_client_poll(h, (UIntPtr)(uint)maxEvents, out ran)
                        : NativeMethods.tether_client_poll_timeout(h, (UIntPtr)(uint)maxEvents, (ulong)timeoutMs, out ran);
                    // Disposed meanwhile (from a handler, or another thread): not an error.
                    if (st != 0 && Volatile.Read(ref native) != IntPtr.Zero && st != (int)TetherStatus.InvalidHandle)
                        pollError = Fail(st, h);
                }
            }
            finally
            {
                Volatile.Write(ref pollThread, 0);
                GC.KeepAlive(this);
            }
            RunDeferred();
            ReportCaught();
            if (pollError != null) throw pollError;
            return (int)(ulong)ran;
        }

        private void RunDeferred()
        {
            if (deferred.Count == 0) return;
            var todo = deferred.ToArray();
            deferred.Clear();
            foreach (var c in todo) c.Run();
        }

        private void ReportCaught()
        {
            if (caught.Count == 0) return;
            var errors = caught.ToArray();
            caught.Clear();
            var handler = HandlerException;
            if (handler == null) throw new TetherHandlerException(errors[0], errors.Length);
            foreach (var e in errors) handler(e);
        }

        // ---- lifetime ----

        /// <summary>Free the native client: a graceful close (the outbox drained, up to the close
        /// timeout; Dispose blocks at most that plus 2 s, so for a frame-friendly end call Close()
        /// and keep dispatching until Completion, then Dispose returns at once). Safe from inside
        /// one of this client's handlers (then it does not wait and no further event is raised),
        /// from any thread, and more than once. Receipts still pending fault with
        /// TetherClosedException.</summary>
        public void Dispose()
        {
            Release(false);
            GC.SuppressFinalize(this);
        }

        /// <summary>Frees the native client if Dispose was not called (on a thread-pool thread).</summary>
        ~TetherClient()
        {
            if (Volatile.Read(ref native) != IntPtr.Zero) Interlocked.Increment(ref FinalizersRun);
            Release(true);
        }

        private void Release(bool finalizing)
        {
            IntPtr h = Interlocked.Exchange(ref native, IntPtr.Zero);
            if (h == IntPtr.Zero) return;
            GCHandle mine = self;
            if (finalizing)
            {
                // Only value fields may be used here. In poll mode nothing runs a callback
                // outside DispatchEvents, and nothing can be dispatching an unreachable client,
                // so no callback can come during or after the free. At process exit the OS
                // reclaims everything: a free there could only delay the exit.
                if (Environment.HasShutdownStarted) return;
                try
                {
                    ThreadPool.QueueUserWorkItem(_ => FreeNative(h, mine));
                }
                catch (Exception)
                {
                    FreeNative(h, mine);
                }
                return;
            }
            FreeNative(h, mine);
            // No callback runs after tether_client_free returned (from inside a handler: no
            // further one). What is still pending can never be reported now.
            var sink = new List<TaskCompletion>();
            lock (stateLock)
            {
                var why = new TetherClosedException(TetherStatus.Closed, "the client was disposed before the message's fate was known");
                foreach (var r in pending.Values) r.MarkFailed(why, sink);
                pending.Clear();
                unwritten.Clear();
            }
            sink.Add(new TaskCompletion(completion, null));
            if (Volatile.Read(ref pollThread) == Thread.CurrentThread.ManagedThreadId) deferred.AddRange(sink);
            else foreach (var c in sink) c.Run();
        }

        // Every native client alive in this AppDomain, with its GCHandle. FreeNative takes a
        // client out before freeing it, so whichever path gets there first (Dispose, the
        // finalizer's thread-pool job, a domain unload) frees the native client and the handle,
        // and the others find nothing to do.
        private static readonly Dictionary<IntPtr, GCHandle> Live = new Dictionary<IntPtr, GCHandle>();
        private static bool unloadHooked;

        private static void Track(IntPtr h, GCHandle handle)
        {
            lock (Live)
            {
                Live[h] = handle;
                LiveNativeClients = Live.Count;
                if (unloadHooked) return;
                unloadHooked = true;
                try
                {
                    AppDomain.CurrentDomain.DomainUnload += OnDomainUnload;
                }
                catch (Exception)
                {
                    // A runtime without AppDomain events (IL2CPP players): nothing reloads there.
                }
            }
        }

        // Frees h if it is still tracked for the client behind `owner` (a token can only come
        // back for another client after 2^32 reuses of its slot; the check makes even that harmless).
        private static void FreeNative(IntPtr h, GCHandle owner)
        {
            GCHandle handle;
            lock (Live)
            {
                if (!Live.TryGetValue(h, out handle) || handle != owner) return;
                Live.Remove(h);
            }
            NativeMethods.tether_client_free(h);
            handle.Free();
            lock (Live) LiveNativeClients = Live.Count;
        }

        // The Unity editor reloads scripts by unloading their AppDomain (entering play mode,
        // after a compile) while the native library stays loaded: a client not disposed by
        // then would keep its connection open until the editor quits. Close them all first
        // (the closes run in parallel), then free each. No callback can run: nothing
        // dispatches any more, and nothing polls a freed client.
        private static void OnDomainUnload(object sender, EventArgs e)
        {
            IntPtr[] all;
            lock (Live)
            {
                all = new IntPtr[Live.Count];
                Live.Keys.CopyTo(all, 0);
            }
            byte[] reason = Utf8.Z("scripts reloaded", "reason");
            foreach (var h in all) NativeMethods.tether_client_close(h, 1000, reason);
            foreach (var h in all)
            {
                GCHandle owner;
                lock (Live)
                {
                    if (!Live.TryGetValue(h, out owner)) continue;
                }
                FreeNative(h, owner);
            }
        }

        // ---- the events, as the trampolines deliver them (on the polling thread) ----

        private void Defer(List<TaskCompletion> sink)
        {
            deferred.AddRange(sink);
        }

        private void OnWrittenUpTo(ulong upTo)
        {
            var sink = new List<TaskCompletion>();
            lock (stateLock)
            {
                if (upTo > writtenUpTo) writtenUpTo = upTo;
                while (unwritten.Count > 0 && unwritten.Peek().Id <= upTo)
                {
                    Receipt r = unwritten.Dequeue();
                    r.MarkWritten(sink);
                    if (!envelope) pending.Remove(r.Id);
                }
            }
            Defer(sink);
            var e = Written;
            if (e != null) e(upTo);
        }

        private void OnAckedId(ulong id)
        {
            var sink = new List<TaskCompletion>();
            lock (stateLock)
            {
                Receipt r;
                if (pending.TryGetValue(id, out r))
                {
                    pending.Remove(id);
                    r.MarkAcked(sink);
                }
                else if (id > lastRegistered) earlyAcks.Add(id);
            }
            Defer(sink);
            var e = Acked;
            if (e != null) e(id);
        }

        private void OnSendFailedId(ulong id, int status, string reason)
        {
            var why = new TetherDeliveryFailedException(id, (TetherStatus)status, reason);
            var sink = new List<TaskCompletion>();
            lock (stateLock)
            {
                Receipt r;
                if (pending.TryGetValue(id, out r))
                {
                    pending.Remove(id);
                    r.MarkFailed(why, sink);
                }
                else if (id > lastRegistered) earlyFailures[id] = why;
            }
            Defer(sink);
            var e = SendFailed;
            if (e != null) e(id, why);
        }

        private void OnClosedFinal(ushort code, string reason, ulong undelivered)
        {
            if (!closedSeen)
            {
                closedSeen = true;
                deferred.Add(new TaskCompletion(completion, null));
            }
            var e = Closed;
            if (e != null) e(code, reason, (int)Math.Min(undelivered, int.MaxValue));
        }

        private void OnMessageData(IntPtr data, UIntPtr len, int kind)
        {
            var e = MessageReceived;
            if (e == null) return; // nobody listens: no copy
            ulong n = (ulong)len;
            if (n > int.MaxValue) throw new TetherException(TetherStatus.TooLarge, "a message of " + n + " bytes does not fit a byte[]");
            var bytes = new byte[n];
            if (n > 0) Marshal.Copy(data, bytes, 0, (int)n);
            e(new Message(kind == NativeConst.MessageText ? MessageType.Text : MessageType.Binary, bytes));
        }

        private void Caught(Exception e)
        {
            caught.Add(e);
        }

        // Called first by every trampoline: the client behind user_data, or null (collected, or
        // a callback on a thread that is not dispatching, which poll mode rules out: reported).
        private static TetherClient From(IntPtr userData)
        {
            var c = GCHandle.FromIntPtr(userData).Target as TetherClient;
            if (c == null) return null;
            int dispatching = Volatile.Read(ref c.pollThread);
            if (dispatching != Thread.CurrentThread.ManagedThreadId)
            {
                // Not inside DispatchEvents on this thread: the lists are not ours to touch.
                System.Diagnostics.Debug.WriteLine("Tether: a callback arrived outside DispatchEvents (thread " + Thread.CurrentThread.ManagedThreadId + "); ignored");
                Interlocked.Increment(ref OffThreadCallbacks);
                return null;
            }
            return c;
        }

        internal static int OffThreadCallbacks; // for the tests: must stay 0

        // ---- trampolines: static, [MonoPInvokeCallback], never let an exception out ----

        [Preserve]
        private static class Trampolines
        {
            // The delegates live as long as the process: native code keeps their pointers.
            private static readonly NativeStateFn StateFn = OnState;
            private static readonly NativeVoidFn OpenFn = OnOpen;
            private static readonly NativeVoidFn ReadyFn = OnReady;
            private static readonly NativeMessageFn MessageFn = OnMessage;
            private static readonly NativeCloseFn CloseFn = OnClose;
            private static readonly NativeReconnectingFn ReconnectingFn = OnReconnecting;
            private static readonly NativeIdFn WrittenFn = OnWritten;
            private static readonly NativeIdFn AckedFn = OnAcked;
            private static readonly NativeSendFailedFn SendFailedFn = OnSendFailed;
            private static readonly NativeErrorFn ErrorFn = OnError;
            private static readonly NativeClosedFn ClosedFn = OnClosed;
            private static readonly NativeSessionResetFn SessionResetFn = OnSessionReset;

            internal static readonly NativeCallbacks Table = new NativeCallbacks
            {
                // TETHER_CALLBACKS_INIT: the size this binding was compiled with; every callback set.
                struct_size = (UIntPtr)(uint)Marshal.SizeOf(typeof(NativeCallbacks)),
                on_state = Marshal.GetFunctionPointerForDelegate(StateFn),
                on_open = Marshal.GetFunctionPointerForDelegate(OpenFn),
                on_ready = Marshal.GetFunctionPointerForDelegate(ReadyFn),
                on_message = Marshal.GetFunctionPointerForDelegate(MessageFn),
                on_close = Marshal.GetFunctionPointerForDelegate(CloseFn),
                on_reconnecting = Marshal.GetFunctionPointerForDelegate(ReconnectingFn),
                on_written = Marshal.GetFunctionPointerForDelegate(WrittenFn),
                on_acked = Marshal.GetFunctionPointerForDelegate(AckedFn),
                on_send_failed = Marshal.GetFunctionPointerForDelegate(SendFailedFn),
                on_error = Marshal.GetFunctionPointerForDelegate(ErrorFn),
                on_closed = Marshal.GetFunctionPointerForDelegate(ClosedFn),
                on_session_reset = Marshal.GetFunctionPointerForDelegate(SessionResetFn),
            };

            // The catch of last resort: an exception while reporting an exception is dropped
            // (it must not reach native code either).
            private static void Report(TetherClient c, Exception e)
            {
                try
                {
                    if (c != null) c.Caught(e);
                }
                catch
                {
                }
            }

            [MonoPInvokeCallback(typeof(NativeStateFn))]
            [Preserve]
            private static void OnState(IntPtr ud, int from, int to)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c == null) return;
                    var e = c.StateChanged;
                    if (e != null) e((ClientState)from, (ClientState)to);
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeVoidFn))]
            [Preserve]
            private static void OnOpen(IntPtr ud)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c == null) return;
                    var e = c.Opened;
                    if (e != null) e();
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeVoidFn))]
            [Preserve]
            private static void OnReady(IntPtr ud)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c == null) return;
                    var e = c.Ready;
                    if (e != null) e();
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeMessageFn))]
            [Preserve]
            private static void OnMessage(IntPtr ud, IntPtr data, UIntPtr len, int kind)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c != null) c.OnMessageData(data, len, kind);
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeCloseFn))]
            [Preserve]
            private static void OnClose(IntPtr ud, ushort code, IntPtr reason, byte willReconnect)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c == null) return;
                    var e = c.Disconnected;
                    if (e != null) e(code, Utf8.FromNative(reason), willReconnect != 0);
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeReconnectingFn))]
            [Preserve]
            private static void OnReconnecting(IntPtr ud, uint attempt, ulong delayMs)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c == null) return;
                    var e = c.Reconnecting;
                    if (e != null) e(attempt, TimeSpan.FromMilliseconds(delayMs));
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeIdFn))]
            [Preserve]
            private static void OnWritten(IntPtr ud, ulong upTo)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c != null) c.OnWrittenUpTo(upTo);
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeIdFn))]
            [Preserve]
            private static void OnAcked(IntPtr ud, ulong id)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c != null) c.OnAckedId(id);
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeSendFailedFn))]
            [Preserve]
            private static void OnSendFailed(IntPtr ud, ulong id, int status, IntPtr reason)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c != null) c.OnSendFailedId(id, status, Utf8.FromNative(reason));
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeErrorFn))]
            [Preserve]
            private static void OnError(IntPtr ud, int status, IntPtr message)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c == null) return;
                    var e = c.Error;
                    if (e != null) e(TetherException.FromStatus((TetherStatus)status, Utf8.FromNative(message)));
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeClosedFn))]
            [Preserve]
            private static void OnClosed(IntPtr ud, ushort code, IntPtr reason, UIntPtr undelivered)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c != null) c.OnClosedFinal(code, Utf8.FromNative(reason), (ulong)undelivered);
                }
                catch (Exception ex) { Report(c, ex); }
            }

            [MonoPInvokeCallback(typeof(NativeSessionResetFn))]
            [Preserve]
            private static void OnSessionReset(IntPtr ud, IntPtr reset)
            {
                TetherClient c = null;
                try
                {
                    c = From(ud);
                    if (c == null) return;
                    var e = c.SessionReset;
                    if (e == null || reset == IntPtr.Zero) return;
                    var r = (NativeSessionReset)Marshal.PtrToStructure(reset, typeof(NativeSessionReset));
                    e(SessionResetInfo.From(ref r));
                }
                catch (Exception ex) { Report(c, ex); }
            }
        }
    }
}
