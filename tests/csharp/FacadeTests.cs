// The NativeWebSocket-shaped facade and the package's samples, driven by the fake player loop.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading.Tasks;
using Tether;

namespace TetherTests
{
    public static class FacadeTests
    {
        [Test]
        public static void nativewebsocket_facade_echoes_and_closes()
        {
            var ws = new TetherWebSocket(Runner.P.Url, new Dictionary<string, string> { { "X-Test", "facade" } });
            var got = new List<byte[]>();
            var errors = new List<string>();
            var closes = new List<WebSocketCloseCode>();
            int opens = 0;
            ws.OnOpen += () => opens++;
            ws.OnMessage += bytes => got.Add(bytes);
            ws.OnError += e => errors.Add(e);
            ws.OnClose += code => closes.Add(code);
            Check.Equal(WebSocketState.Closed, ws.State, "not connected yet");
            Task connected = ws.Connect();
            Func<Func<bool>, int, string, bool> pump = (cond, ms, what) =>
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while (!cond())
                {
                    if (clock.ElapsedMilliseconds > T.Ms(ms)) throw new CheckFailed("timed out waiting for " + what);
                    ws.DispatchMessageQueue();
                    ws.Client.DispatchEvents(0, 20); // a frame's wait, on an event
                }
                return true;
            };
            pump(() => opens == 1, 10000, "OnOpen");
            Check.Equal(WebSocketState.Open, ws.State, "open");
            Task t1 = ws.SendText("hi");
            Task t2 = ws.Send(new byte[] { 10, 20, 30 });
            pump(() => got.Count == 2 && t1.IsCompleted && t2.IsCompleted, 10000, "echoes");
            Check.Equal("hi", Encoding.UTF8.GetString(got[0]), "text echo as bytes");
            Check.True(got[1].SequenceEqual(new byte[] { 10, 20, 30 }), "binary echo");
            Check.True(t1.Status == TaskStatus.RanToCompletion && t2.Status == TaskStatus.RanToCompletion, "send tasks complete when written");
            Check.True(!connected.IsCompleted, "Connect()'s task runs until the end, as NativeWebSocket's");
            // A dropped link is not OnClose: Tether reconnects and raises OnOpen again.
            Runner.P.Cmd("drop");
            pump(() => opens == 2, 10000, "OnOpen after the reconnect");
            Check.Equal(0, closes.Count, "no OnClose for a link drop");
            Check.True(errors.Count >= 1, "the drop reported to OnError");
            Task closed = ws.Close();
            pump(() => closed.IsCompleted && connected.IsCompleted, 10000, "closed");
            Check.True(closes.SequenceEqual(new[] { WebSocketCloseCode.Normal }), "one OnClose, Normal");
            Check.Equal(WebSocketState.Closed, ws.State, "closed");
            ws.Dispose();
        }

        [Test]
        public static void facade_bad_url_raises_on_error_and_faults_connect()
        {
            var ws = new TetherWebSocket("http://127.0.0.1/");
            var errors = new List<string>();
            ws.OnError += e => errors.Add(e);
            Task t = ws.Connect();
            Check.True(t.IsFaulted && t.Exception.InnerException is TetherConfigException, "Connect faulted with TetherConfigException");
            Check.True(errors.Count == 1 && errors[0].Contains("ws://"), "OnError with the reason: " + string.Join(";", errors));
            Check.Throws<InvalidOperationException>(() => ws.SendText("x"), "send before a successful Connect");
        }

        [Test]
        public static void sample_tether_behaviour_runs_in_a_player_loop()
        {
            var b = new TetherSample.TetherBehaviour { url = Runner.P.Url };
            UnityEngine.Debug.Lines.Clear();
            using (var player = new FakePlayer(b))
            {
            player.Start();
            Check.True(player.RunUntil(() => b.MessagesReceived == 1 && b.HellosConfirmed == 1, 10000), "hello echoed and its receipt awaited, frames " + player.Frames);
            Check.True(UnityEngine.Debug.Lines.Any(l => l == "log: Tether: ready"), "ready logged");
            Check.True(UnityEngine.Debug.Lines.Any(l => l.Contains("received hello from TetherBehaviour")), "echo logged");
            var client = b.Client;
            player.Quit();
            Check.True(client.IsDisposed && b.Client == null, "OnDestroy disposed the client");
            Check.True(!UnityEngine.Debug.Lines.Any(l => l.StartsWith("exception") || l.StartsWith("error")), "nothing went wrong: " + string.Join(" | ", UnityEngine.Debug.Lines));
            }
        }

        [Test]
        public static void sample_nativewebsocket_echo_runs_unchanged_on_the_facade()
        {
            var b = new TetherSample.Connection { url = Runner.P.Url };
            UnityEngine.Debug.Lines.Clear();
            using (var player = new FakePlayer(b))
            {
                player.Start();
                Check.True(player.RunUntil(() => b.Received >= 4, 10000), "two rounds of echoes, frames " + player.Frames);
                Check.True(UnityEngine.Debug.Lines.Contains("log: Connection open!"), "OnOpen logged");
                Check.True(UnityEngine.Debug.Lines.Contains("log: OnMessage! plain text message"), "text echo logged");
                player.Quit();
            }
            Check.True(!UnityEngine.Debug.Lines.Any(l => l.StartsWith("log: Error!")), "no error: " + string.Join(" | ", UnityEngine.Debug.Lines.Where(l => l.Contains("Error"))));
            // A send still awaited when OnDestroy disposed the socket is not reported as
            // delivered: its await throws TetherClosedException, which Unity logs. Nothing else may.
            var exceptions = UnityEngine.Debug.Lines.Where(l => l.StartsWith("exception: ")).ToList();
            Check.True(exceptions.All(l => l.StartsWith("exception: Tether.TetherClosedException")), "only undelivered sends: " + string.Join(" | ", exceptions));
        }
    }
}
