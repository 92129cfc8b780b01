// NativeWebSocket's README example (github.com/endel/NativeWebSocket), switched to Tether by
// changing `using NativeWebSocket;` to `using Tether;` and `WebSocket` to `TetherWebSocket`.
// Nothing else changed, except OnDestroy (NativeWebSocket has no Dispose).
using System.Text;
using Tether; // was: using NativeWebSocket;
using UnityEngine;

namespace TetherSample
{
    /// <summary>Sends a binary and a text message every 0.3 s while open; logs what comes back.</summary>
    public class Connection : MonoBehaviour
    {
        [SerializeField] public string url = "ws://localhost:3000";

        TetherWebSocket websocket; // was: WebSocket websocket;

        /// <summary>Messages received so far.</summary>
        public int Received { get; private set; }

        async void Start()
        {
            websocket = new TetherWebSocket(url);

            websocket.OnOpen += () =>
            {
                Debug.Log("Connection open!");
            };

            websocket.OnError += (e) =>
            {
                Debug.Log("Error! " + e);
            };

            websocket.OnClose += (e) =>
            {
                Debug.Log("Connection closed!");
            };

            websocket.OnMessage += (bytes) =>
            {
                Received++;
                var message = Encoding.UTF8.GetString(bytes);
                Debug.Log("OnMessage! " + message);
            };

            // Keep sending messages at every 0.3s
            InvokeRepeating("SendWebSocketMessage", 0.0f, 0.3f);

            // waiting for messages
            await websocket.Connect();
        }

        void Update()
        {
#if !UNITY_WEBGL || UNITY_EDITOR
            websocket.DispatchMessageQueue();
#endif
        }

        async void SendWebSocketMessage()
        {
            if (websocket.State == WebSocketState.Open)
            {
                // Sending bytes
                await websocket.Send(new byte[] { 10, 20, 30 });

                // Sending plain text
                await websocket.SendText("plain text message");
            }
        }

        private async void OnApplicationQuit()
        {
            await websocket.Close();
        }

        // Tether only: free the native client (NativeWebSocket has nothing to free).
        private void OnDestroy()
        {
            websocket.Dispose();
        }
    }
}
