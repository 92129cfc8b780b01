// Echo of text and binary through tether-peer, receipts in raw mode, stats, struct layout.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using Tether;

namespace TetherTests
{
    public static class MessagesTests
    {
        /// <summary>A ready raw client on the shared peer, recording its messages.</summary>
        internal static TetherClient Ready(List<Message> got, TetherOptions options = null)
        {
            var c = new TetherClient(options ?? T.Options(Runner.P.Url));
            bool ready = false;
            c.Ready += () => ready = true;
            if (got != null) c.MessageReceived += m => got.Add(m);
            T.Until(c, () => ready, 10000, "ready");
            return c;
        }

        [Test]
        public static void echo_text_round_trips_utf8()
        {
            var got = new List<Message>();
            using (var c = Ready(got))
            {
                string big = new string('x', 100000) + "\u00e9";
                var texts = new[] { "hello", "h\u00e9llo \u2713 \u65e5\u672c\u8a9e \U0001F3AE", "", big };
                foreach (var t in texts) c.SendText(t);
                T.Until(c, () => got.Count == texts.Length, 10000, "4 echoes");
                for (int i = 0; i < texts.Length; i++)
                {
                    Check.True(got[i].IsText, "message " + i + " is text");
                    Check.Equal(texts[i], got[i].Text, "message " + i);
                    Check.Equal(System.Text.Encoding.UTF8.GetByteCount(texts[i]), got[i].Data.Length, "UTF-8 length of message " + i);
                }
            }
        }

        [Test]
        public static void echo_binary_round_trips_every_byte()
        {
            var got = new List<Message>();
            using (var c = Ready(got))
            {
                var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
                var big = new byte[1 << 20];
                new Random(7).NextBytes(big);
                c.Send(all);
                c.Send(new byte[0]);
                c.Send(big);
                c.Send(all, 10, 5); // a slice: bytes 10..14
                T.Until(c, () => got.Count == 4, 10000, "4 echoes");
                Check.True(got.All(m => m.Type == MessageType.Binary && m.Text == null), "all binary");
                Check.True(got[0].Data.SequenceEqual(all), "256 byte values");
                Check.Equal(0, got[1].Data.Length, "empty message");
                Check.True(got[2].Data.SequenceEqual(big), "1 MiB");
                Check.True(got[3].Data.SequenceEqual(new byte[] { 10, 11, 12, 13, 14 }), "slice");
            }
        }

        [Test]
        public static void raw_receipts_complete_when_written_and_refuse_acks()
        {
            var got = new List<Message>();
            using (var c = Ready(got))
            {
                ulong writtenEvent = 0;
                c.Written += upTo => writtenEvent = upTo;
                var receipts = Enumerable.Range(0, 10).Select(i => c.SendText("r" + i)).ToList();
                Check.True(receipts.Select(r => r.Id).SequenceEqual(Enumerable.Range(1, 10).Select(i => (ulong)i)), "ids 1..10 in send order");
                var written = receipts.Select(r => r.Written).ToArray();
                T.Until(c, () => written.All(w => w.IsCompleted), 10000, "Written tasks");
                Check.True(written.All(w => w.Status == TaskStatus.RanToCompletion), "all written");
                Check.Equal((ulong)10, writtenEvent, "Written event up to the last id");
                Check.True(receipts.All(r => r.State == DeliveryStatus.Written), "receipt states");
                Check.Equal(DeliveryStatus.Written, receipts[9].QueryStatus(), "the library's view");
                var acked = receipts[0].Acked;
                Check.True(acked.IsFaulted && acked.Exception.InnerException is TetherNotSupportedException, "Acked in raw mode: TetherNotSupportedException");
                // A receipt asked for after the fact is complete at once.
                T.Until(c, () => got.Count == 10, 10000, "10 echoes");
                Check.True(c.SendText("late").Written.Status != TaskStatus.Faulted, "a new receipt is not faulted");
            }
        }

        [Test]
        public static void stats_count_what_went_through()
        {
            var got = new List<Message>();
            using (var c = Ready(got))
            {
                for (int i = 0; i < 5; i++) c.Send(new byte[100]);
                T.Until(c, () => got.Count == 5, 10000, "5 echoes");
                var s = c.GetStats();
                Check.Equal((ulong)5, s.MessagesSent, "MessagesSent");
                Check.Equal((ulong)500, s.BytesSent, "BytesSent");
                Check.Equal((ulong)5, s.MessagesReceived, "MessagesReceived");
                Check.Equal((ulong)500, s.BytesReceived, "BytesReceived");
                Check.Equal((ulong)0, s.Reconnects, "Reconnects");
                Check.Equal((ulong)0, s.OutboxMessages, "OutboxMessages");
                Check.True(s.OutboxHighWaterMessages >= 1, "OutboxHighWaterMessages");
            }
        }

        [Test]
        public static void struct_layout_matches_the_c_header()
        {
            // TETHER_LAYOUT comes from tests/csharp/layout.c, compiled against include/tether.h.
            string layout = Environment.GetEnvironmentVariable("TETHER_LAYOUT");
            Check.True(!string.IsNullOrEmpty(layout), "TETHER_LAYOUT is set (run through tests/csharp/run.sh)");
            var c = layout.Split(' ').Select(kv => kv.Split('=')).ToDictionary(kv => kv[0], kv => int.Parse(kv[1]));
            Check.Equal(c["callbacks"], Marshal.SizeOf(typeof(NativeCallbacks)), "sizeof(tether_callbacks)");
            Check.Equal(c["callbacks.on_session_reset"], (int)Marshal.OffsetOf(typeof(NativeCallbacks), "on_session_reset"), "offsetof on_session_reset");
            Check.Equal(c["callbacks.on_closed"], (int)Marshal.OffsetOf(typeof(NativeCallbacks), "on_closed"), "offsetof on_closed");
            Check.Equal(c["stats"], Marshal.SizeOf(typeof(NativeStats)), "sizeof(tether_stats)");
            Check.Equal(c["stats.last_app_rtt_us"], (int)Marshal.OffsetOf(typeof(NativeStats), "last_app_rtt_us"), "offsetof last_app_rtt_us");
            Check.Equal(c["session_reset"], Marshal.SizeOf(typeof(NativeSessionReset)), "sizeof(tether_session_reset)");
            Check.Equal(c["session_reset.inbound_may_repeat"], (int)Marshal.OffsetOf(typeof(NativeSessionReset), "inbound_may_repeat"), "offsetof inbound_may_repeat");
            Check.Equal(c["session_reset.acked_at_risk_first"], (int)Marshal.OffsetOf(typeof(NativeSessionReset), "acked_at_risk_first"), "offsetof acked_at_risk_first");
            Check.Equal(c["session_reset.server_revision"], (int)Marshal.OffsetOf(typeof(NativeSessionReset), "server_revision"), "offsetof server_revision");
        }

        [Test]
        public static void native_version_matches_the_binding()
        {
            Check.True(TetherClient.NativeVersion.StartsWith(TetherClient.BindingVersion + "."), "library " + TetherClient.NativeVersion + " vs binding " + TetherClient.BindingVersion);
            Check.Equal("client is closed", TetherException.Describe(TetherStatus.Closed), "tether_status_str, decoded");
            Check.Equal("unknown status", TetherException.Describe((TetherStatus)999), "an unknown status");
            var e = TetherException.FromStatus(TetherStatus.QueueFull, null);
            Check.True(e is TetherQueueFullException && e.Message == TetherException.Describe(TetherStatus.QueueFull), "FromStatus without a message uses the description");
        }
    }
}
