// Reconnect through a server restart, envelope acks as Tasks, failures as exceptions and events.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Tether;

namespace TetherTests
{
    public static class ConnectionTests
    {
        [Test]
        public static void reconnect_through_a_server_restart_keeps_queued_messages_in_order()
        {
            var got = new List<string>();
            var P = Runner.P;
            using (var c = new TetherClient(T.Options(P.Url)))
            {
                int readies = 0, disconnects = 0;
                bool willReconnect = true;
                c.Ready += () => readies++;
                // Every failed attempt while the peer is stopped ends a link too (1006).
                c.Disconnected += (code, reason, again) => { disconnects++; willReconnect &= again; };
                c.MessageReceived += m => got.Add(m.Text);
                T.Until(c, () => readies == 1, 10000, "ready");
                c.SendText("before");
                T.Until(c, () => got.Count == 1, 10000, "first echo");
                var receipts = new List<Receipt>();
                try
                {
                    P.Cmd("stop"); // no listener: reconnect attempts are refused
                    P.Cmd("drop");
                    T.Until(c, () => disconnects >= 1, 10000, "disconnected");
                    for (int i = 0; i < 50; i++) receipts.Add(c.SendText("queued " + i));
                    // Attempts keep failing while the peer is stopped; nothing is written meanwhile.
                    T.Until(c, () => c.State == ClientState.Reconnecting, 10000, "reconnecting");
                    c.DispatchEvents();
                    Check.Equal((ulong)50, c.GetStats().OutboxMessages, "50 messages wait in the outbox");
                    Check.True(receipts.All(r => r.State == DeliveryStatus.Queued && !r.Written.IsCompleted), "none written while down");
                }
                finally
                {
                    P.Cmd("restart");
                }
                T.Until(c, () => got.Count == 51, 15000, "50 queued echoes after the restart");
                Check.True(willReconnect, "every link end said it would reconnect");
                Check.True(got.Skip(1).SequenceEqual(Enumerable.Range(0, 50).Select(i => "queued " + i)), "in send order: " + string.Join(",", got.Take(5)));
                Check.Equal(2, readies, "ready twice");
                Check.True(receipts.All(r => r.Written.Status == TaskStatus.RanToCompletion), "every queued receipt written");
                Check.Equal((ulong)1, c.GetStats().Reconnects, "one reconnect");
            }
        }

        [Test]
        public static void envelope_acks_are_awaited_as_tasks()
        {
            using (var R = Peer.RefServer("--token secret --key k3y"))
            {
                var o = T.Options(R.Url);
                o.Protocol = TetherProtocol.Envelope;
                o.SessionId = "cs-acks";
                o.AuthToken = "secret";
                o.SigningKey = System.Text.Encoding.UTF8.GetBytes("k3y");
                o.HandshakeTimeout = TimeSpan.FromMilliseconds(T.Ms(5000));
                using (var c = new TetherClient(o))
                {
                    var got = new List<Message>();
                    var ackEvents = new List<ulong>();
                    c.MessageReceived += m => got.Add(m);
                    c.Acked += id => ackEvents.Add(id);
                    Check.True(c.IsEnvelope, "envelope mode");
                    // Sent before the link is up: queued, then acked after the handshake.
                    var receipts = Enumerable.Range(0, 20).Select(i => c.SendText("acked " + i)).ToList();
                    receipts.Add(c.Send(new byte[] { 1, 0, 2 }));
                    Task all = Task.WhenAll(receipts.Select(r => r.Acked));
                    T.Until(c, () => all.IsCompleted, 15000, "all acks");
                    Check.Equal(TaskStatus.RanToCompletion, all.Status, "all acked: " + all.Exception);
                    Check.True(receipts.All(r => r.State == DeliveryStatus.Acked && r.Written.Status == TaskStatus.RanToCompletion), "acked implies written");
                    Check.Equal(DeliveryStatus.Acked, receipts[3].QueryStatus(), "the library's view");
                    Check.True(ackEvents.OrderBy(x => x).SequenceEqual(receipts.Select(r => r.Id)), "one Acked event per message");
                    var s = c.GetStats();
                    Check.Equal((ulong)21, s.MessagesAcked, "MessagesAcked");
                    Check.Equal((ulong)0, s.AwaitingAck, "AwaitingAck");
                    // The reference server echoes every payload and can push on its own.
                    R.Cmd("send cs-acks pushed by the server");
                    T.Until(c, () => got.Count == 22, 10000, "21 echoes and a push");
                    Check.Equal("acked 0", got[0].Text, "first echo");
                    Check.True(got[20].Type == MessageType.Binary && got[20].Data.SequenceEqual(new byte[] { 1, 0, 2 }), "binary echo");
                    Check.Equal("pushed by the server", got[21].Text, "push");
                }
            }
        }

        [Test]
        public static void a_persistent_outbox_keeps_messages_undelivered_at_close_for_the_next_client()
        {
            var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tether-cs-outbox-" + System.Diagnostics.Process.GetCurrentProcess().Id);
            System.IO.File.Delete(path);
            try
            {
                using (var R = Peer.RefServer(""))
                {
                    // The first client never reaches a server: its messages wait in the outbox.
                    var o = T.Options("ws://127.0.0.1:1/");
                    o.Protocol = TetherProtocol.Envelope;
                    o.SessionId = "cs-persist";
                    o.OutboxPath = path;
                    o.OutboxSync = OutboxSync.None;
                    List<Receipt> receipts;
                    using (var first = new TetherClient(o))
                    {
                        receipts = Enumerable.Range(0, 3).Select(i => first.SendText("kept " + i)).ToList();
                        var held = T.Options(R.Url);
                        held.Protocol = TetherProtocol.Envelope;
                        held.OutboxPath = path;
                        var e = Check.Throws<TetherException>(() => new TetherClient(held), "a second client on the same file");
                        Check.Equal(TetherStatus.Storage, e.Status, "Storage: " + e.Message);
                        Check.True(e.Message.Contains("in use"), "the message says the file is in use: " + e.Message);
                        // Close and dispatch to the end: the library reports each as kept.
                        first.Close();
                        T.Until(first, () => first.Completion.IsCompleted, 10000, "the close");
                    }
                    Check.True(receipts.All(r => r.State == DeliveryStatus.Failed && r.Failure.Status == TetherStatus.Kept), "reported as kept: " + string.Join(", ", receipts.Select(r => r.Failure == null ? "none" : r.Failure.Status.ToString())));
                    // The next client with the same file delivers them, in order, ids continuing.
                    var n = T.Options(R.Url);
                    n.Protocol = TetherProtocol.Envelope;
                    n.OutboxPath = path;
                    n.HandshakeTimeout = TimeSpan.FromMilliseconds(T.Ms(5000));
                    using (var next = new TetherClient(n))
                    {
                        var got = new List<string>();
                        next.MessageReceived += m => got.Add(m.Text);
                        T.Until(next, () => got.Count == 3, 15000, "the kept messages echoed");
                        Check.True(got.SequenceEqual(new[] { "kept 0", "kept 1", "kept 2" }), "in order: " + string.Join(", ", got));
                        Check.Equal(receipts[2].Id + 1, next.SendText("after").Id, "ids continue");
                    }
                }
            }
            finally
            {
                System.IO.File.Delete(path);
            }
        }

        [Test]
        public static void envelope_rejection_fails_receipts_and_reports_errors()
        {
            using (var R = Peer.RefServer("--token secret"))
            {
                var o = T.Options(R.Url);
                o.Protocol = TetherProtocol.Envelope;
                o.SessionId = "cs-rejected";
                o.AuthToken = "wrong";
                R.Cmd("stall on"); // hold the upgrade: the message is queued before the reject
                using (var c = new TetherClient(o))
                {
                    var errors = new List<TetherException>();
                    var failed = new List<ulong>();
                    bool closed = false;
                    c.Error += e => errors.Add(e);
                    c.SendFailed += (id, e) => failed.Add(id);
                    c.Closed += (code, reason, undelivered) => closed = true;
                    var r = c.SendText("never acked");
                    var acked = r.Acked;
                    R.Cmd("stall off");
                    T.Until(c, () => closed, 15000, "closed after the final reject");
                    Check.True(acked.IsFaulted, "the Acked task faults");
                    var why = acked.Exception.InnerException as TetherDeliveryFailedException;
                    Check.True(why != null, "with TetherDeliveryFailedException: " + acked.Exception.InnerException);
                    Check.Equal(r.Id, why.MessageId, "for that message");
                    Check.True(r.Written.IsFaulted, "never written: Written faults too");
                    Check.True(failed.SequenceEqual(new[] { r.Id }), "one SendFailed event");
                    Check.True(errors.Any(e => e is TetherProtocolException && e.Status == TetherStatus.Rejected && e.Message.Contains("bad token")),
                        "a TetherProtocolException (Rejected, 'bad token'): " + string.Join("; ", errors.Select(e => e.GetType().Name + " " + e.Status + " " + e.Message)));
                    Check.True(c.Completion.IsCompleted, "Completion done");
                    Check.Equal(ClientState.Closed, c.State, "closed");
                }
            }
        }

        [Test]
        public static void session_reset_is_reported_after_a_server_crash()
        {
            var R = Peer.RefServer();
            int port = R.Port;
            try
            {
                var o = T.Options(R.Url);
                o.Protocol = TetherProtocol.Envelope;
                o.SessionId = "cs-reset";
                using (var c = new TetherClient(o))
                {
                    var resets = new List<SessionResetInfo>();
                    int readies = 0;
                    c.SessionReset += r => resets.Add(r);
                    c.Ready += () => readies++;
                    var first = c.SendText("one");
                    T.Until(c, () => first.Acked.IsCompleted, 10000, "first ack");
                    R.Kill();
                    R.Dispose();
                    R = Peer.RefServerOnPort(port);
                    T.Until(c, () => readies == 2, 15000, "ready again on the new server");
                    Check.Equal(1, resets.Count, "one SessionReset");
                    Check.True(resets[0].ServerLostState, "ServerLostState");
                    Check.True(resets[0].ServerRevision >= 2, "revision 2 server");
                    var second = c.SendText("two");
                    T.Until(c, () => second.Acked.IsCompleted, 10000, "ack from the new server");
                    Check.Equal(TaskStatus.RanToCompletion, second.Acked.Status, "acked");
                }
            }
            finally
            {
                R.Dispose();
            }
        }

        [Test]
        public static void connect_failures_reach_the_error_event_and_close()
        {
            var o = T.Options(Runner.P.Url);
            o.MaxReconnectAttempts = 1;
            // A stalled peer never answers the upgrade: each attempt ends at the connect timeout,
            // so the client is certainly still trying when the message below is queued.
            o.ConnectTimeout = TimeSpan.FromMilliseconds(T.Ms(500));
            Runner.P.Cmd("stall on");
            try
            {
                using (var c = new TetherClient(o))
                {
                    var errors = new List<TetherException>();
                    ushort closedCode = 0;
                    c.Error += e => errors.Add(e);
                    c.Closed += (code, reason, undelivered) => closedCode = code;
                    var r = c.SendText("nowhere to go");
                    T.Until(c, () => c.Completion.IsCompleted, 15000, "given up");
                    Check.True(errors.Any(e => e is TetherConnectException && e.Status == TetherStatus.ConnectFailed), "ConnectFailed as TetherConnectException");
                    Check.True(errors.Any(e => e is TetherConnectException && e.Status == TetherStatus.RetriesExhausted), "RetriesExhausted as TetherConnectException");
                    Check.Equal((ushort)1006, closedCode, "Closed with 1006");
                    Check.True(r.Written.IsFaulted && r.Written.Exception.InnerException is TetherDeliveryFailedException, "the queued message failed");
                }
            }
            finally
            {
                Runner.P.Cmd("stall off");
            }
        }

        [Test]
        public static void drop_oldest_fails_the_oldest_receipt_and_says_so()
        {
            var o = T.Options(Runner.P.Url);
            o.OutboxMaxMessages = 2;
            o.Overflow = OverflowPolicy.DropOldest;
            Runner.P.Cmd("stop");
            try
            {
                using (var c = new TetherClient(o))
                {
                    var failed = new List<KeyValuePair<ulong, TetherStatus>>();
                    c.SendFailed += (id, e) => failed.Add(new KeyValuePair<ulong, TetherStatus>(id, e.Status));
                    var r1 = c.SendText("oldest");
                    var r2 = c.SendText("second");
                    var r3 = c.SendText("third"); // accepted: the oldest goes
                    T.Until(c, () => r1.Written.IsCompleted, 10000, "the oldest's fate");
                    var why = r1.Written.Exception.InnerException as TetherDeliveryFailedException;
                    Check.True(why != null && why.Status == TetherStatus.Dropped && why.MessageId == r1.Id, "r1 dropped: " + r1.Written.Exception);
                    Check.True(failed.Count == 1 && failed[0].Key == r1.Id && failed[0].Value == TetherStatus.Dropped, "one SendFailed(Dropped) event");
                    Check.True(r2.State == DeliveryStatus.Queued && r3.State == DeliveryStatus.Queued, "the others wait");
                    Check.Equal(DeliveryStatus.Failed, r1.QueryStatus(), "the library's view");
                }
            }
            finally
            {
                Runner.P.Cmd("restart");
            }
        }

        [Test]
        public static void call_errors_are_typed_exceptions()
        {
            var e = Check.Throws<TetherConfigException>(() => new TetherClient("http://127.0.0.1/"), "http URL");
            Check.Equal(TetherStatus.InvalidUrl, e.Status, "status");
            Check.True(e.Message.Contains("ws://"), "the reason says what to use: " + e.Message);
            var bad = T.Options(Runner.P.Url);
            bad.HappyEyeballsDelay = TimeSpan.FromMilliseconds(1);
            var e2 = Check.Throws<TetherConfigException>(() => new TetherClient(bad), "1 ms happy eyeballs");
            Check.Equal(TetherStatus.InvalidConfig, e2.Status, "status");
            Check.True(e2.Message.Contains("happy_eyeballs_delay"), "names the option: " + e2.Message);
            Check.Throws<ArgumentException>(() => new TetherClient("ws://127.0.0.1/\0x"), "an embedded NUL");

            var o = T.Options(Runner.P.Url);
            o.MaxOutboundMessageSize = 16;
            using (var c = MessagesTests.Ready(null, o))
            {
                Check.Throws<TetherMessageTooLargeException>(() => c.Send(new byte[17]), "17 bytes over 16");
                Check.Throws<ArgumentException>(() => c.SendText("\ud800"), "a lone surrogate");
                Check.Throws<ArgumentNullException>(() => c.SendText(null), "null text");
                Check.Throws<ArgumentOutOfRangeException>(() => c.Send(new byte[4], 3, 2), "slice outside the array");
                Check.Throws<TetherArgumentException>(() => c.Close(1005, ""), "close code 1005 may not be sent");
                c.Close();
                Check.Throws<TetherClosedException>(() => c.SendText("late"), "send after Close");
                T.Until(c, () => c.Completion.IsCompleted, 10000, "closed");
            }
            Runner.P.Cmd("stop");
            try
            {
                var q = T.Options(Runner.P.Url);
                q.QueueWhileDisconnected = false;
                using (var c = new TetherClient(q))
                    Check.Throws<TetherNotReadyException>(() => c.SendText("x"), "not ready, no queueing");
                var f = T.Options(Runner.P.Url);
                f.OutboxMaxMessages = 2;
                using (var c = new TetherClient(f))
                {
                    c.SendText("1");
                    c.SendText("2");
                    var full = Check.Throws<TetherQueueFullException>(() => c.SendText("3"), "a full outbox");
                    Check.Equal(TetherStatus.QueueFull, full.Status, "status");
                }
            }
            finally
            {
                Runner.P.Cmd("restart");
            }
            var disposed = new TetherClient(T.Options(Runner.P.Url));
            disposed.Dispose();
            Check.Throws<TetherClosedException>(() => disposed.SendText("x"), "send after Dispose");
            Check.Throws<TetherClosedException>(() => disposed.GetStats(), "stats after Dispose");
            Check.Equal(0, disposed.DispatchEvents(), "DispatchEvents after Dispose does nothing");
            Check.Equal(ClientState.Closed, disposed.State, "state after Dispose");
        }
    }
}
