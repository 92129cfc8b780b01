import asyncio
import sys

import tether

url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9001/"


async def main() -> None:
    async with tether.AsyncClient(url) as client:
        await client.wait_ready(timeout=10)
        receipt = client.send("hello")  # send only queues: no await needed
        await receipt.written()  # `await receipt` waits for the ack in envelope mode
        async for message in client:
            print("got", message)
            break


asyncio.run(main())
