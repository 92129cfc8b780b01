import asyncio
import sys

import tether

url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9001/"


async def main() -> None:
    async with tether.connect(url) as ws:  # open on entry, or raises tether.ConnectError
        receipt = await ws.send("hello")  # waits while the outbox is full
        await receipt  # written (raw mode); with protocol="envelope": acked by the server
        async for message in ws:  # str or bytes; goes on across reconnects
            print("got", message)
            break


asyncio.run(main())
