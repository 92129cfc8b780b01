// Lifetime and threads: Dispose from inside a handler and from another thread, handler
// exceptions caught before native code, every callback on the dispatching thread, reentrant and
// concurrent dispatch refused, the finalizer of an undisposed client.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using Tether;

namespace TetherTests
{
    public static class LifetimeTests
    {
        [Test]
        public static void dispose_inside_a_handler_stops_events_at_once()
        {
            int live = TetherClient.LiveNativeClients;
            var P = Runner.P;
            var c = new TetherClient(T.Options(P.Url));
            int messages = 0, closedEvents = 0;
            bool ready = false;
            c.Ready += () => ready = true;
            c.Closed += (code, reason, n) => closedEvents++;
            c.MessageReceived += m => { messages++; c.Dispose(); };
            T.Until(c, () => ready, 10000, "ready");
            Check.Equal(live + 1, TetherClient.LiveNativeClients, "one native client more");
            for (int i = 0; i < 3; i++) P.Cmd("send-text push " + i);
            T.Until(c, () => messages > 0, 10000, "the first push");
            Check.True(c.IsDisposed, "disposed from the handler");
            Check.Equal(ClientState.Closed, c.State, "state");
            Check.Equal(0, c.DispatchEvents(), "nothing dispatched after");
            Check.Equal(0, c.DispatchEvents(0, 100), "nothing dispatched after, waiting either");
            c.Dispose(); // again: a no-op
            Check.Equal(1, messages, "no handler ran after Dispose");
            Check.Equal(0, closedEvents, "no Closed event after Dispose");
            Check.True(c.Completion.IsCompleted, "Completion done");
            Check.Equal(live, TetherClient.LiveNativeClients, "the native client is freed");
            T.Eventually(() => P.Open() == 0, 5000, "the peer sees the connection closed");
        }

        [Test]
        public static void dispose_fails_pending_receipts()
        {
            var P = Runner.P;
            P.Cmd("stop");
            try
            {
                var c = new TetherClient(T.Options(P.Url));
                var receipts = Enumerable.Range(0, 3).Select(i => c.SendText("stuck " + i)).ToList();
                var written = receipts.Select(r => r.Written).ToList();
                c.Dispose();
                Check.True(written.All(w => w.IsFaulted && w.Exception.InnerException is TetherClosedException), "Written faults with TetherClosedException");
                Check.True(receipts.All(r => r.State == DeliveryStatus.Failed && r.Failure is TetherClosedException), "receipts failed");
                Check.True(c.Completion.IsCompleted, "Completion done");
            }
            finally
            {
                P.Cmd("restart");
            }
        }

        [Test]
        public static void dispose_from_another_thread_while_dispatching()
        {
            int live = TetherClient.LiveNativeClients;
            var got = new List<Message>();
            var c = MessagesTests.Ready(got);
            var start = new ManualResetEventSlim();
            var disposer = new Thread(() => { start.Wait(); c.Dispose(); });
            disposer.Start();
            int sent = 0;
            bool released = false;
            // Keep sending and dispatching until the other thread's Dispose lands.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!c.IsDisposed && clock.ElapsedMilliseconds < T.Ms(10000))
            {
                try
                {
                    c.SendText("m" + sent++);
                }
                catch (TetherClosedException)
                {
                }
                c.DispatchEvents();
                if (!released && sent == 20) { start.Set(); released = true; }
            }
            if (!released) start.Set();
            Check.True(disposer.Join(T.Ms(10000)), "Dispose returned");
            Check.True(c.IsDisposed, "disposed");
            Check.Equal(0, c.DispatchEvents(), "nothing after");
            Check.Equal(live, TetherClient.LiveNativeClients, "freed once");
        }

        [Test]
        public static void a_throwing_handler_is_reported_not_unwound_into_native_code()
        {
            var got = new List<string>();
            var reported = new List<Exception>();
            var c = new TetherClient(T.Options(Runner.P.Url));
            using (c)
            {
                bool ready = false;
                c.HandlerException += e => reported.Add(e);
                c.Ready += () => ready = true;
                c.StateChanged += (from, to) => { throw new InvalidOperationException("state " + to); };
                c.MessageReceived += m =>
                {
                    got.Add(m.Text);
                    if (m.Text == "boom") throw new InvalidOperationException("boom from a handler");
                };
                c.Written += upTo => { throw new ApplicationException("written " + upTo); };
                T.Until(c, () => ready, 10000, "ready despite throwing StateChanged handlers");
                Check.True(reported.Count >= 2 && reported.All(e => e is InvalidOperationException), "StateChanged exceptions reported (connecting, ready)");
                reported.Clear();
                c.SendText("boom");
                c.SendText("after");
                T.Until(c, () => got.Count == 2, 10000, "both echoes");
                Check.True(got.SequenceEqual(new[] { "boom", "after" }), "the handler kept running for later messages");
                Check.True(reported.Any(e => e is InvalidOperationException && e.Message == "boom from a handler"), "the message handler's exception reported");
                Check.True(reported.Any(e => e is ApplicationException && e.Message.StartsWith("written")), "the Written handler's exception reported");
                // The client still works.
                var r = c.SendText("still alive");
                T.Until(c, () => got.Count == 3, 10000, "third echo");
                Check.Equal(TaskStatus.RanToCompletion, r.Written.Status, "written");
            }
        }

        [Test]
        public static void without_a_subscriber_handler_exceptions_come_out_of_dispatch()
        {
            var got = new List<string>();
            using (var c = MessagesTests.Ready(null))
            {
                c.MessageReceived += m =>
                {
                    got.Add(m.Text);
                    if (m.Text == "throw") throw new FormatException("bad payload");
                };
                c.SendText("throw");
                TetherHandlerException caught = null;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while (caught == null && clock.ElapsedMilliseconds < T.Ms(10000))
                {
                    try
                    {
                        c.DispatchEvents(0, 50);
                    }
                    catch (TetherHandlerException e)
                    {
                        caught = e;
                    }
                }
                Check.True(caught != null, "DispatchEvents threw TetherHandlerException");
                Check.True(caught.InnerException is FormatException && caught.InnerException.Message == "bad payload", "with the handler's exception inside");
                Check.Equal(1, caught.Count, "one exception");
                c.SendText("next");
                T.Until(c, () => got.Count == 2, 10000, "the next echo");
                Check.Equal("next", got[1], "dispatch goes on");
            }
        }

        [Test]
        public static void dispatch_from_inside_a_handler_is_refused()
        {
            var reported = new List<Exception>();
            var c = new TetherClient(T.Options(Runner.P.Url));
            using (c)
            {
                bool ready = false;
                c.HandlerException += e => reported.Add(e);
                c.Ready += () => { ready = true; c.DispatchEvents(); };
                T.Until(c, () => ready, 10000, "ready");
                Check.Equal(1, reported.Count, "one exception");
                var e0 = reported[0] as TetherException;
                Check.True(e0 != null && e0.Status == TetherStatus.Reentrant && e0.Message.Contains("inside"), "Reentrant: " + reported[0]);
            }
        }

        [Test]
        public static void every_callback_runs_on_the_dispatching_thread()
        {
            int main = Thread.CurrentThread.ManagedThreadId;
            var threads = new ConcurrentBag<int>();
            var got = new List<string>();
            var c = new TetherClient(T.Options(Runner.P.Url));
            using (c)
            {
                bool ready = false;
                Action note = () => threads.Add(Thread.CurrentThread.ManagedThreadId);
                c.StateChanged += (a, b) => note();
                c.Opened += () => note();
                c.Ready += () => { note(); ready = true; };
                c.MessageReceived += m => { note(); got.Add(m.Text); };
                c.Written += id => note();
                c.Disconnected += (code, reason, again) => note();
                c.Reconnecting += (n, d) => note();
                c.Error += e => note();
                c.Closed += (code, reason, n) => note();
                T.Until(c, () => ready, 10000, "ready");
                // Four threads send at once while this one dispatches.
                const int Senders = 4, PerSender = 25;
                var receipts = new ConcurrentBag<Receipt>();
                var senders = Enumerable.Range(0, Senders).Select(s => new Thread(() =>
                {
                    for (int i = 0; i < PerSender; i++) receipts.Add(c.SendText(s + ":" + i));
                })).ToList();
                senders.ForEach(t => t.Start());
                T.Until(c, () => got.Count == Senders * PerSender, 15000, "all echoes");
                Check.True(senders.All(t => t.Join(T.Ms(5000))), "senders done");
                // Task continuations that run synchronously run here too, after the native call.
                var continuations = new ConcurrentBag<int>();
                foreach (var r in receipts) r.Written.ContinueWith(_ => continuations.Add(Thread.CurrentThread.ManagedThreadId), TaskContinuationOptions.ExecuteSynchronously);
                T.Until(c, () => receipts.All(r => r.Written.IsCompleted), 10000, "receipts written");
                // A link drop and a reconnect, for the Disconnected / Reconnecting handlers.
                Runner.P.Cmd("drop");
                T.Until(c, () => c.GetStats().Reconnects == 1 && c.State == ClientState.Ready, 10000, "reconnected");
                c.Close();
                T.Until(c, () => c.Completion.IsCompleted, 10000, "closed");
                for (int s = 0; s < Senders; s++)
                {
                    var mine = got.Where(x => x.StartsWith(s + ":")).ToList();
                    Check.True(mine.SequenceEqual(Enumerable.Range(0, PerSender).Select(i => s + ":" + i)), "sender " + s + "'s messages in its order");
                }
                Check.Equal(Senders * PerSender, receipts.Select(r => r.Id).Distinct().Count(), "distinct ids");
                Check.True(threads.Count > Senders * PerSender, "callbacks recorded: " + threads.Count);
                Check.True(threads.All(t => t == main), "every callback on the dispatching thread; saw " + string.Join(",", threads.Distinct()));
                Check.True(continuations.All(t => t == main), "every synchronous continuation on the dispatching thread");
            }
        }

        [Test]
        public static void receipt_continuations_run_after_the_native_call_returned()
        {
            using (var c = MessagesTests.Ready(null))
            {
                // Inside the native poll, DispatchEvents is refused (Reentrant); a synchronous
                // continuation that can dispatch therefore runs after the poll returned.
                bool? couldDispatch = null;
                int thread = 0;
                c.SendText("x").Written.ContinueWith(_ =>
                {
                    thread = Thread.CurrentThread.ManagedThreadId;
                    try
                    {
                        c.DispatchEvents();
                        couldDispatch = true;
                    }
                    catch (TetherException)
                    {
                        couldDispatch = false;
                    }
                }, TaskContinuationOptions.ExecuteSynchronously);
                T.Until(c, () => couldDispatch.HasValue, 10000, "the continuation");
                Check.True(couldDispatch.Value, "the continuation ran outside the native poll");
                Check.Equal(Thread.CurrentThread.ManagedThreadId, thread, "on the dispatching thread");
            }
        }

        [Test]
        public static void the_dispatching_thread_is_whichever_calls_dispatch()
        {
            var threads = new ConcurrentBag<int>();
            int worker = -1;
            Exception failure = null;
            var t = new Thread(() =>
            {
                try
                {
                    worker = Thread.CurrentThread.ManagedThreadId;
                    var got = new List<Message>();
                    using (var c = MessagesTests.Ready(got))
                    {
                        c.MessageReceived += m => threads.Add(Thread.CurrentThread.ManagedThreadId);
                        c.SendText("on a worker");
                        T.Until(c, () => got.Count == 1, 10000, "echo");
                    }
                }
                catch (Exception e)
                {
                    failure = e;
                }
            });
            t.Start();
            Check.True(t.Join(T.Ms(15000)), "worker done");
            if (failure != null) throw failure;
            Check.True(threads.Count == 1 && threads.All(x => x == worker) && worker != Thread.CurrentThread.ManagedThreadId, "ran on the worker");
        }

        [Test]
        public static void concurrent_dispatch_is_refused()
        {
            using (var c = MessagesTests.Ready(null))
            {
                var stop = new ManualResetEventSlim();
                var inside = new ManualResetEventSlim();
                var poller = new Thread(() =>
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    while (!stop.IsSet && clock.ElapsedMilliseconds < T.Ms(10000))
                    {
                        inside.Set();
                        try
                        {
                            c.DispatchEvents(0, 200);
                        }
                        catch (TetherException)
                        {
                            // Refused while the main thread's attempt was inside: expected too.
                        }
                    }
                });
                poller.Start();
                Check.True(inside.Wait(T.Ms(10000)), "the other thread polls");
                TetherException refused = null;
                var deadline = System.Diagnostics.Stopwatch.StartNew();
                while (refused == null && deadline.ElapsedMilliseconds < T.Ms(10000))
                {
                    try
                    {
                        c.DispatchEvents();
                    }
                    catch (TetherException e)
                    {
                        refused = e;
                    }
                }
                stop.Set();
                Check.True(poller.Join(T.Ms(5000)), "poller done");
                Check.True(refused != null && refused.Status == TetherStatus.Reentrant && refused.Message.Contains("another thread"), "refused: " + refused);
            }
        }

        // Runs in a child AppDomain, as Unity's editor runs scripts: a ready client kept in a
        // static field (alive until the domain goes), never disposed.
        private static TetherClient keptByTheScripts;

        private static void ConnectAndLeaveOpen()
        {
            var got = new List<Message>();
            var options = T.Options((string)AppDomain.CurrentDomain.GetData("url"));
            keptByTheScripts = MessagesTests.Ready(got, options);
            keptByTheScripts.SendText("from the scripts domain");
            T.Until(keptByTheScripts, () => got.Count == 1, 10000, "echo");
            AppDomain.CurrentDomain.SetData("live", TetherClient.LiveNativeClients);
        }

        [Test]
        public static void unloading_the_scripts_domain_closes_undisposed_clients()
        {
            // What the Unity editor does on entering play mode or after a compile: the scripts'
            // AppDomain is unloaded while the native library stays loaded in the process.
            var scripts = AppDomain.CreateDomain("scripts");
            scripts.SetData("url", Runner.P.Url);
            scripts.DoCallBack(ConnectAndLeaveOpen);
            Check.Equal(1, (int)scripts.GetData("live"), "one native client alive in that domain");
            T.Eventually(() => Runner.P.Open() == 1, 5000, "its connection open");
            AppDomain.Unload(scripts);
            T.Eventually(() => Runner.P.Open() == 0, 10000, "the connection closed by the unload");
            Check.True(Runner.P.Cmd("last-close").StartsWith("1000"), "closed gracefully (1000)");
            // This domain goes on with the same native library.
            var got = new List<Message>();
            using (var c = MessagesTests.Ready(got))
            {
                c.SendText("after the unload");
                T.Until(c, () => got.Count == 1, 10000, "echo");
            }
        }

        // The client is made, used and dropped on a thread that then ends: no stack slot of a
        // live thread can keep it reachable (Mono scans stacks conservatively).
        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void CreateAndDrop(string url)
        {
            var t = new Thread(() =>
            {
                var got = new List<Message>();
                var c = MessagesTests.Ready(got);
                c.SendText("dropped without Dispose");
                T.Until(c, () => got.Count == 1, 10000, "echo");
            });
            t.Start();
            if (!t.Join(T.Ms(15000))) throw new CheckFailed("the creating thread did not finish");
        }

        [Test(Last = true)]
        public static void an_undisposed_client_is_freed_by_its_finalizer()
        {
            int live = TetherClient.LiveNativeClients, finalized = TetherClient.FinalizersRun;
            CreateAndDrop(Runner.P.Url);
            Check.Equal(live + 1, TetherClient.LiveNativeClients, "the dropped client is alive");
            T.Eventually(() => Runner.P.Open() == 1, 5000, "its connection open (and no other)");
            for (int i = 0; i < 20 && TetherClient.FinalizersRun == finalized; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
            Check.Equal(finalized + 1, TetherClient.FinalizersRun, "the finalizer ran");
            T.Eventually(() => TetherClient.LiveNativeClients == live, 10000, "the native client freed (on the thread pool)");
            T.Eventually(() => Runner.P.Open() == 0, 5000, "the peer sees the connection closed");
            Check.True(Runner.P.Cmd("last-close").StartsWith("1000"), "closed gracefully (1000)");
            // The process goes on: a new client works.
            var got = new List<Message>();
            using (var c = MessagesTests.Ready(got))
            {
                c.SendText("after the finalizer");
                T.Until(c, () => got.Count == 1, 10000, "echo");
            }
            Check.Equal(0, TetherClient.OffThreadCallbacks, "no callback outside DispatchEvents");
        }
    }
}
