// A small test runner for the C# binding under Mono (NUnit is not packaged in Debian): a test
// is a static method marked [Test]; the runner finds them by reflection, so a test's name is
// its method's name and cannot drift. Output: "ok - name (ms)" / "FAIL - name: why", then
// "csharp-tests: N passed, M failed"; exit status 0 only if all passed.
// Environment: TETHER_PEER, TETHER_REF_SERVER (binaries of tests/peers), TETHER_TIMEOUT_SCALE
// (multiply every bound), TETHER_TEST_FILTER (run the tests whose name contains it),
// TETHER_LAYOUT (the C sizes/offsets printed by tests/csharp/layout.c).
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading;
using Tether;

namespace TetherTests
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class TestAttribute : Attribute
    {
        /// <summary>Run after every other test (the finalizer test: it collects garbage).</summary>
        public bool Last { get; set; }
    }

    public sealed class CheckFailed : Exception
    {
        public CheckFailed(string message) : base(message) { }
    }

    public static class Check
    {
        public static void True(bool cond, string what)
        {
            if (!cond) throw new CheckFailed(what);
        }

        public static void Equal<T>(T want, T got, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(want, got))
                throw new CheckFailed(what + ": want " + Show(want) + ", got " + Show(got));
        }

        public static TException Throws<TException>(Action action, string what) where TException : Exception
        {
            try
            {
                action();
            }
            catch (TException e)
            {
                return e;
            }
            catch (Exception e)
            {
                throw new CheckFailed(what + ": want " + typeof(TException).Name + ", got " + e.GetType().Name + ": " + e.Message);
            }
            throw new CheckFailed(what + ": want " + typeof(TException).Name + ", nothing was thrown");
        }

        private static string Show(object o) { return o == null ? "null" : "'" + o + "'"; }
    }

    public static class T
    {
        private static readonly int Scale = ParseScale();

        private static int ParseScale()
        {
            int s;
            return int.TryParse(Environment.GetEnvironmentVariable("TETHER_TIMEOUT_SCALE"), out s) && s > 0 ? s : 1;
        }

        /// <summary>A bound scaled by TETHER_TIMEOUT_SCALE.</summary>
        public static int Ms(int ms) { return ms * Scale; }

        /// <summary>Options as the C tests use them: no heartbeat, fast backoff, short timeouts.</summary>
        public static TetherOptions Options(string url)
        {
            return new TetherOptions(url)
            {
                HeartbeatInterval = TimeSpan.Zero,
                HeartbeatTimeout = TimeSpan.FromSeconds(1),
                BackoffInitial = TimeSpan.FromMilliseconds(20),
                BackoffMax = TimeSpan.FromMilliseconds(200),
                MinUptime = TimeSpan.FromMilliseconds(100),
                ConnectTimeout = TimeSpan.FromMilliseconds(Ms(3000)),
                CloseTimeout = TimeSpan.FromMilliseconds(Ms(2000)),
            };
        }

        /// <summary>Dispatch <paramref name="c"/> until the condition holds, or fail after ms.</summary>
        public static void Until(TetherClient c, Func<bool> condition, int ms, string what)
        {
            if (!c.DispatchUntil(condition, Ms(ms)))
                throw new CheckFailed("timed out after " + Ms(ms) + " ms waiting for " + what);
        }

        /// <summary>Poll a condition that does not need dispatching (a peer's view), bounded.</summary>
        public static void Eventually(Func<bool> condition, int ms, string what)
        {
            var clock = Stopwatch.StartNew();
            while (!condition())
            {
                if (clock.ElapsedMilliseconds > Ms(ms))
                    throw new CheckFailed("timed out after " + Ms(ms) + " ms waiting for " + what);
                Thread.Sleep(10); // polling an outside process: there is no event to wait on
            }
        }
    }

    /// <summary>A tests/peers server (tether-peer or tether-ref-server) driven over stdin/stdout:
    /// "PORT n" first, then one answer line per command. Every read is bounded.</summary>
    public sealed class Peer : IDisposable
    {
        private readonly Process process;
        private readonly BlockingCollection<string> lines = new BlockingCollection<string>();
        public int Port { get; private set; }
        public string Url { get { return "ws://127.0.0.1:" + Port + "/"; } }

        private Peer(string binary, string args)
        {
            var info = new ProcessStartInfo(binary, args)
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = false,
            };
            process = Process.Start(info);
            var reader = new Thread(() =>
            {
                try
                {
                    string line;
                    while ((line = process.StandardOutput.ReadLine()) != null) lines.Add(line);
                }
                catch (Exception)
                {
                }
                lines.CompleteAdding();
            }) { IsBackground = true, Name = "peer-stdout" };
            reader.Start();
            string first = Read(15000);
            if (first == null || !first.StartsWith("PORT ")) throw new CheckFailed(binary + " did not start: " + first);
            Port = int.Parse(first.Substring(5));
        }

        public static Peer Echo()
        {
            return new Peer(Env("TETHER_PEER", "target/debug/tether-peer"), "");
        }

        public static Peer RefServer(string args = "")
        {
            return new Peer(Env("TETHER_REF_SERVER", "target/debug/tether-ref-server"), args);
        }

        /// <summary>A reference server on the port of one that was killed.</summary>
        public static Peer RefServerOnPort(int port, string args = "")
        {
            return new Peer(Env("TETHER_REF_SERVER", "target/debug/tether-ref-server"), "--port " + port + " " + args);
        }

        private static string Env(string name, string dflt)
        {
            string v = Environment.GetEnvironmentVariable(name);
            return string.IsNullOrEmpty(v) ? dflt : v;
        }

        private string Read(int ms)
        {
            string line;
            try
            {
                return lines.TryTake(out line, T.Ms(ms)) ? line : null;
            }
            catch (InvalidOperationException)
            {
                return null; // completed: the process ended
            }
        }

        /// <summary>Send a command; return what follows "OK" (trimmed); fail on ERR or silence.</summary>
        public string Cmd(string command)
        {
            process.StandardInput.WriteLine(command);
            process.StandardInput.Flush();
            string reply = Read(15000);
            if (reply == null || !reply.StartsWith("OK"))
                throw new CheckFailed("peer: '" + command + "' -> " + (reply ?? "no answer"));
            return reply.Substring(2).Trim();
        }

        /// <summary>Open WebSocket connections, as the peer counts them (tether-peer "open").</summary>
        public int Open() { return int.Parse(Cmd("open")); }

        /// <summary>The peer back to echoing, unstalled, accepting.</summary>
        public void Reset()
        {
            Cmd("echo on");
            Cmd("stall off");
            Cmd("reject off");
        }

        /// <summary>SIGKILL (a crash: state lost).</summary>
        public void Kill()
        {
            try
            {
                if (!process.HasExited) process.Kill();
                process.WaitForExit(T.Ms(5000));
            }
            catch (Exception)
            {
            }
        }

        public void Dispose()
        {
            try
            {
                if (!process.HasExited)
                {
                    process.StandardInput.WriteLine("quit");
                    process.StandardInput.Flush();
                    if (!process.WaitForExit(T.Ms(5000))) process.Kill();
                }
            }
            catch (Exception)
            {
                Kill();
            }
            process.Dispose();
        }
    }

    public static class Runner
    {
        /// <summary>The tether-peer every test may use (started before the first test).</summary>
        public static Peer P;

        public static int Main(string[] args)
        {
            if (args.Length == 1 && args[0] == "--exit-with-live-client") return ExitWithLiveClient();
            var tests = typeof(Runner).Assembly.GetTypes()
                .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
                .Select(m => new { Method = m, Attr = m.GetCustomAttribute<TestAttribute>() })
                .Where(x => x.Attr != null)
                .OrderBy(x => x.Attr.Last ? 1 : 0)
                .ThenBy(x => x.Method.DeclaringType.Name, StringComparer.Ordinal)
                .ThenBy(x => x.Method.MetadataToken)
                .ToList();
            var dup = tests.GroupBy(x => x.Method.Name).FirstOrDefault(g => g.Count() > 1);
            if (dup != null)
            {
                Console.WriteLine("two tests named " + dup.Key);
                return 1;
            }
            if (args.Length == 1 && args[0] == "--list")
            {
                foreach (var t in tests) Console.WriteLine(t.Method.Name);
                return 0;
            }
            string filter = Environment.GetEnvironmentVariable("TETHER_TEST_FILTER");
            int passed = 0, failed = 0;
            using (P = Peer.Echo())
            {
                foreach (var t in tests)
                {
                    string name = t.Method.Name;
                    if (!string.IsNullOrEmpty(filter) && !name.Contains(filter)) continue;
                    var clock = Stopwatch.StartNew();
                    try
                    {
                        P.Reset();
                        t.Method.Invoke(null, null);
                        passed++;
                        Console.WriteLine("ok - " + name + " (" + clock.ElapsedMilliseconds + " ms)");
                    }
                    catch (TargetInvocationException e)
                    {
                        failed++;
                        var why = e.InnerException;
                        Console.WriteLine("FAIL - " + name + " (" + clock.ElapsedMilliseconds + " ms): " + (why is CheckFailed ? why.Message : why.ToString()));
                    }
                    catch (Exception e)
                    {
                        failed++;
                        Console.WriteLine("FAIL - " + name + ": " + e);
                    }
                }
            }
            if (TetherClient.OffThreadCallbacks != 0)
            {
                failed++;
                Console.WriteLine("FAIL - no_callback_outside_dispatch: " + TetherClient.OffThreadCallbacks + " callbacks arrived off the dispatching thread");
            }
            Console.WriteLine("csharp-tests: " + passed + " passed, " + failed + " failed");
            return failed == 0 ? 0 : 1;
        }

        // A process of its own: a ready client that is never disposed, then the process exits
        // (run.sh checks the exit status and that it exits in time). The peer goes first, so the
        // client is even reconnecting when the process ends.
        private static int ExitWithLiveClient()
        {
            var peer = Peer.Echo();
            var c = new TetherClient(T.Options(peer.Url));
            bool ready = false;
            c.Ready += () => ready = true;
            if (!c.DispatchUntil(() => ready, T.Ms(10000))) return 3;
            c.SendText("left behind");
            peer.Dispose();
            Console.WriteLine("ready; exiting with the client alive");
            return 0;
        }
    }
}
