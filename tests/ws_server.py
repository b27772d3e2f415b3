"""A websockets (PyPI) server in a background thread, for tests of the firmware's WebSocket
and OCPP clients: `with WsServer(handler) as srv:` runs `handler(ws)` per connection."""
import asyncio
import threading

import websockets


class WsServer:
    def __init__(self, handler, subprotocols=("ocpp1.6",), port=0, **kw):
        self.handler = handler
        self.subprotocols = list(subprotocols)
        self.port = port
        self.kw = kw
        self.loop = None
        self._ready = threading.Event()
        self._stop = None
        self.thread = None
        self.requests = []  # request headers per connection

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._ready.clear()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("websocket server did not start")
        return self

    def _main(self):
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._serve())

    async def _serve(self):
        self._stop = asyncio.Event()

        async def h(ws):
            self.requests.append(ws.request.headers)
            await self.handler(ws)

        async with websockets.serve(h, "127.0.0.1", self.port, subprotocols=self.subprotocols,
                                    **self.kw) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def call(self, coro, timeout=10):
        """Run a coroutine on the server's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(10)
        self.loop = None
