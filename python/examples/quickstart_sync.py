import sys

import tether

url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9001/"

with tether.Client(url) as client:  # connects (and reconnects) in the background
    receipt = client.send("hello")  # queued until the link is ready; returns the id
    client.send_json({"greeting": "hello", "n": 1})
    receipt.wait_written(timeout=10)  # on the wire (acks need protocol="envelope")
    for n, message in enumerate(client, start=1):  # str for text, bytes for binary
        print("got", message)
        if n == 2:
            break
    print("sent", client.stats().messages_sent)
