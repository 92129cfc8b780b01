# Type stubs for the native module tether._tether (hand-written; keep in step with python/src/).
from __future__ import annotations

import asyncio
from types import GenericAlias, ModuleType
from typing import (
    Any,
    Collection,
    Generator,
    Generic,
    Iterator,
    List,
    Literal,
    Optional,
    Tuple,
    TypeVar,
    Union,
    final,
    overload,
)

from typing_extensions import Self, Unpack

from ._types import ClientOptions, ConnectionInfo, Data, Event, State, Stats

_T = TypeVar("_T")

__version__: str
__all__ = ["__version__", "Client", "_Handle", "_WakeReader", "Receipt", "_init", "_atexit", "set_worker_threads"]

class Client(Generic[_T]):
    """A resilient WebSocket client (blocking API; see also tether.AsyncClient).

    ``Client(url, **options)`` starts connecting in the background at once. ``send`` queues
    and returns a :class:`Receipt`; ``recv()`` and iteration yield messages (``str`` for text,
    ``bytes`` for binary) and, with ``events=``, event objects. Blocking calls release the GIL
    and can be interrupted with Ctrl-C.
    """

    @overload
    def __new__(
        cls,
        url: str,
        *,
        events: Literal[False, None] = None,
        **options: Unpack[ClientOptions],
    ) -> Client[Data]: ...
    @overload
    def __new__(
        cls,
        url: str,
        *,
        events: Union[Literal[True], Collection[type[Event]]],
        **options: Unpack[ClientOptions],
    ) -> Client[Union[Data, Event]]: ...
    @property
    def url(self) -> str: ...
    @property
    def state(self) -> State: ...
    @property
    def closed(self) -> bool: ...
    @property
    def protocol(self) -> Literal["raw", "envelope"]: ...
    @property
    def session_id(self) -> str: ...
    @property
    def epoch(self) -> str:
        """Envelope mode: this client's stream epoch (16 hex digits, new for every client)."""
    @property
    def server_epoch(self) -> Optional[str]:
        """Envelope mode: the server's stream epoch from the last welcome (None before the
        first one, and with a revision-1 server)."""
    def send(self, data: Union[str, bytes, bytearray, memoryview]) -> Receipt:
        """Queue a message (``str``: text; bytes-like: binary). Returns its receipt, or raises
        ``QueueFullError``, ``MessageTooLargeError``, ``ClosedError``, ``NotReadyError``."""
    def send_json(self, obj: object) -> Receipt:
        """Queue ``json.dumps(obj)`` (compact) as a text message."""
    def recv(self, timeout: Optional[float] = None) -> _T:
        """The next message or subscribed event, waiting up to ``timeout`` seconds. Raises
        ``TimeoutError``, or ``ClosedError`` once closed and drained."""
    def recv_many(self, max: int = 1024, timeout: Optional[float] = None) -> List[_T]:
        """Every item already queued (at least one, at most ``max``), waiting like ``recv``."""
    def __iter__(self) -> Iterator[_T]: ...
    def __next__(self) -> _T: ...
    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Wait until ready. Raises ``TimeoutError``, or ``ConnectError`` if the client closed
        for good first."""
    def close(self, code: int = 1000, reason: str = "", timeout: Optional[float] = None) -> None:
        """Close gracefully (drain, close handshake) and wait up to ``timeout`` seconds."""
    @property
    def connection_info(self) -> Optional[ConnectionInfo]:
        """What the last connection negotiated (subprotocol, 101 headers, proxy, peer); None
        before the first connection."""
    def stats(self) -> Stats: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> bool: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: object) -> None: ...
    def _handle(self) -> _Handle: ...
    def __class_getitem__(cls, item: Any) -> GenericAlias: ...

@final
class Receipt:
    """The id of an accepted message (usable as an ``int``) and the ways to learn its fate."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> Literal["queued", "written", "acked", "failed", "unknown"]: ...
    def wait(self, timeout: Optional[float] = None) -> None:
        """Block until the server acks the message (envelope mode). Raises ``DeliveryFailedError``,
        ``TimeoutError``, or ``NotSupportedError`` in raw mode."""
    def wait_written(self, timeout: Optional[float] = None) -> None:
        """Block until the message is written to the socket. Raises ``DeliveryFailedError``,
        ``TimeoutError``."""
    def acked(self) -> asyncio.Future[None]:
        """Awaitable: the server acked the message (envelope mode; there the same as ``await
        receipt``). Raises ``NotSupportedError`` in raw mode."""
    def written(self) -> asyncio.Future[None]:
        """Awaitable: the message was written to the socket."""
    def __await__(self) -> Generator[Any, None, None]:
        """``await receipt``: the strongest guarantee of the mode: acked (envelope mode) or
        written to the socket (raw mode)."""
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __lt__(self, other: Union[Receipt, int], /) -> bool: ...
    def __le__(self, other: Union[Receipt, int], /) -> bool: ...
    def __gt__(self, other: Union[Receipt, int], /) -> bool: ...
    def __ge__(self, other: Union[Receipt, int], /) -> bool: ...

@final
class _Handle:
    def generation(self) -> int: ...
    def arm(self, seen: int) -> int: ...
    def bridge(self) -> Optional[object]: ...
    def set_bridge(self, bridge: object) -> bool: ...
    def wake_pipe(self) -> Optional[_WakeReader]: ...
    def drop_wake_pipe(self) -> None: ...
    def readable(self) -> bool: ...
    def ready_or_closed(self) -> bool: ...
    def close_bound(self) -> float: ...
    def drain(self, max: int) -> List[Any]: ...
    def finished(self) -> Optional[bool]: ...
    def closed_error(self) -> BaseException: ...
    def ready(self) -> bool: ...
    def last_disconnect(self) -> Optional[str]: ...
    def state_name(self) -> str: ...
    def is_closed(self) -> bool: ...
    def start_close(self, code: int = 1000, reason: str = "") -> None: ...
    def outcome(self, id: int, want: int) -> Optional[object]: ...

@final
class _WakeReader:
    def fileno(self) -> int: ...
    def drain(self) -> None: ...

def set_worker_threads(count: int) -> None:
    """Worker threads of Tether's I/O runtime (1 to 64, default 1); before the first client."""

def _init(types: ModuleType, aio: ModuleType) -> None: ...
def _atexit() -> None: ...
