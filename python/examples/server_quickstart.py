import asyncio
import sys

import tether
from tether.server import Context, RedisStore, Server

redis_url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"


def handler(ctx: Context) -> None:  # once per new message, in order
    ctx.tx.rpush(f"orders:{ctx.sid}", ctx.data)  # committed with the de-dup mark
    ctx.send("ok")  # the reply, committed with it too


async def main() -> None:
    store = RedisStore(redis_url)
    server = Server(handler, store=store)  # token=, key=, instance=: see docs/SERVER.md
    await server.start("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.port}/"
    async with tether.AsyncClient(url, protocol="envelope") as client:
        await client.send_acked("one pizza", timeout=10)  # acked: committed in Redis
        print("reply:", await client.recv(10))
        orders = await store.redis.lrange(f"orders:{client.session_id}", 0, -1)
        print("orders:", orders)
    await server.close()
    await store.close()


asyncio.run(main())
