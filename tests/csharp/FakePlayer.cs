// A player loop that drives a MonoBehaviour the way Unity does: its message methods (Start,
// Update, OnApplicationQuit, OnDestroy) found by name through reflection, one Update per frame,
// InvokeRepeating by method name, and a synchronization context like
// UnitySynchronizationContext: await continuations are posted to the main thread and run at the
// next frame; an exception escaping an async void method is logged (Debug.LogException), not
// fatal. Not Unity: no scene, no engine, frames are as fast as the loop.
using System;
using System.Collections.Generic;
using System.Reflection;

namespace TetherTests
{
    /// <summary>Posts run on the main thread at the next frame, as in Unity.</summary>
    public sealed class MainThreadContext : System.Threading.SynchronizationContext
    {
        private readonly Queue<KeyValuePair<System.Threading.SendOrPostCallback, object>> queue = new Queue<KeyValuePair<System.Threading.SendOrPostCallback, object>>();

        public override void Post(System.Threading.SendOrPostCallback d, object state)
        {
            lock (queue) queue.Enqueue(new KeyValuePair<System.Threading.SendOrPostCallback, object>(d, state));
        }

        public override void Send(System.Threading.SendOrPostCallback d, object state) { d(state); }

        public void RunPosted()
        {
            KeyValuePair<System.Threading.SendOrPostCallback, object>[] work;
            lock (queue)
            {
                work = queue.ToArray();
                queue.Clear();
            }
            foreach (var w in work)
            {
                try
                {
                    w.Key(w.Value);
                }
                catch (Exception e)
                {
                    UnityEngine.Debug.LogException(e);
                }
            }
        }
    }

    /// <summary>Unity's calls into a behaviour, by reflection, as the engine makes them.</summary>
    public sealed class FakePlayer : IDisposable
    {
        private readonly UnityEngine.MonoBehaviour behaviour;
        private readonly MainThreadContext context = new MainThreadContext();
        private readonly System.Threading.SynchronizationContext previous;
        public int Frames { get; private set; }

        public FakePlayer(UnityEngine.MonoBehaviour behaviour)
        {
            this.behaviour = behaviour;
            behaviour.name = behaviour.GetType().Name;
            previous = System.Threading.SynchronizationContext.Current;
            System.Threading.SynchronizationContext.SetSynchronizationContext(context);
        }

        public void Dispose() { System.Threading.SynchronizationContext.SetSynchronizationContext(previous); }

        private void Message(string method)
        {
            var m = behaviour.GetType().GetMethod(method, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
            if (m == null) return;
            try
            {
                m.Invoke(behaviour, null);
            }
            catch (TargetInvocationException e)
            {
                UnityEngine.Debug.LogException(e.InnerException); // Unity logs and goes on
            }
        }

        public void Start() { Message("Start"); }

        public void Frame()
        {
            Frames++;
            context.RunPosted();
            Message("Update");
            foreach (var r in behaviour.Repeating) Message(r.Key);
        }

        /// <summary>Frames until the condition holds, bounded by time.</summary>
        public bool RunUntil(Func<bool> condition, int ms)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!condition())
            {
                if (clock.ElapsedMilliseconds > T.Ms(ms)) return false;
                Frame();
                System.Threading.Thread.Sleep(2); // a frame's worth of time, not a synchronisation
            }
            return true;
        }

        /// <summary>OnApplicationQuit, OnDestroy, then what they posted.</summary>
        public void Quit()
        {
            Message("OnApplicationQuit");
            Message("OnDestroy");
            context.RunPosted();
        }
    }
}
