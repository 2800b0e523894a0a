"""A TCP relay on loopback in front of a real server (PostgreSQL), which a test stops and starts
again: to the dashboard, the database goes away (connections refused, open ones cut) and comes
back on the same address, without touching the server the rest of the suite uses."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator


class Relay:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:  # a free port, kept for every start()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.connections = 0  # accepted since the relay was made

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> "Relay":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a server going down does."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            cut, self._open = list(self._open), set()
        for s in cut:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)


@contextmanager
def demo_database_behind_relay(pg_url: str, suffix: str, seed: int) -> Iterator[tuple[Relay, str, str]]:
    """A PostgreSQL database of 3,000 demo payments over 30 days, reached through a relay:
    (relay, database name, URL through the relay). Dropped afterwards."""
    import sqlalchemy as sa

    from builders import pg_execute
    from paydash.settings import Settings
    from paydash.sources.demo import DemoSpec, build_demo_database
    from paydash.warehouse.engine import Warehouse

    url = sa.make_url(pg_url)
    name = f"{url.database}_{suffix}"
    pg_execute(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    wh = Warehouse(url.set(database=name).render_as_string(False), Settings(), read_only=False)
    try:
        build_demo_database(wh, DemoSpec(payments=3_000, days=30, seed=seed), show_progress=False)
    finally:
        wh.dispose()
    relay = Relay((url.host or "127.0.0.1", url.port or 5432)).start()
    try:
        yield relay, name, url.set(host="127.0.0.1", port=relay.port, database=name).render_as_string(False)
    finally:
        relay.stop()
        pg_execute(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
