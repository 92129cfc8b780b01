// A MonoBehaviour on Tether: connect in Start(), raise every event from Update(), await a
// message's receipt, and end without stalling a frame. Attach it to a GameObject and set the
// URL in the Inspector (any WebSocket echo server in raw mode; a Tether server for envelope).
using System;
using Tether;
using UnityEngine;

namespace TetherSample
{
    /// <summary>Connects on Start, dispatches Tether's events from Update, sends "hello" on every
    /// ready and logs what happens to it.</summary>
    public class TetherBehaviour : MonoBehaviour
    {
        [SerializeField] public string url = "ws://127.0.0.1:8080/";
        [SerializeField] public bool envelope = false;

        /// <summary>The client (null before Start and after OnDestroy).</summary>
        public TetherClient Client { get; private set; }

        /// <summary>Messages received so far.</summary>
        public int MessagesReceived { get; private set; }

        /// <summary>Receipts of "hello" that completed (written in raw mode, acked in envelope mode).</summary>
        public int HellosConfirmed { get; private set; }

        private void Start()
        {
            var options = new TetherOptions(url)
            {
                Protocol = envelope ? TetherProtocol.Envelope : TetherProtocol.Raw,
                // Dispose (OnDestroy) waits at most this plus 2 s for a graceful close.
                CloseTimeout = TimeSpan.FromSeconds(1),
            };
            Client = new TetherClient(options);
            // Every handler below runs inside DispatchEvents(), on the main thread: Unity's API
            // may be used from them.
            Client.Ready += () =>
            {
                Debug.Log("Tether: ready");
                SendHello();
            };
            Client.MessageReceived += m =>
            {
                MessagesReceived++;
                Debug.Log("Tether: received " + m);
            };
            Client.Disconnected += (code, reason, willReconnect) =>
                Debug.LogWarning("Tether: link closed (" + code + " " + reason + ")" + (willReconnect ? ", reconnecting" : ""));
            Client.Error += e => Debug.LogWarning("Tether: " + e.GetType().Name + ": " + e.Message);
            Client.SendFailed += (id, e) => Debug.LogError("Tether: " + e.Message);
            // An exception thrown by a handler above lands here instead of in native code.
            Client.HandlerException += Debug.LogException;
        }

        private void Update()
        {
            if (Client != null) Client.DispatchEvents();
        }

        private async void SendHello()
        {
            Receipt receipt = Client.SendText("hello from " + name);
            try
            {
                // The continuation runs on the main thread (Unity's synchronization context).
                await (Client.IsEnvelope ? receipt.Acked : receipt.Written);
                HellosConfirmed++;
                Debug.Log("Tether: message " + receipt.Id + (Client.IsEnvelope ? " acked" : " written"));
            }
            catch (TetherException e)
            {
                Debug.LogError("Tether: message " + receipt.Id + " failed: " + e.Message);
            }
        }

        private void OnDestroy()
        {
            if (Client == null) return;
            Client.Dispose();
            Client = null;
        }
    }
}
