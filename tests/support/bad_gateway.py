"""A hostile 'Sparkle' on 127.0.0.1: answers every request with a scripted raw HTTP reply (an unlucky network or a
misbehaving processor), after the request has been read in full, so the gateway has 'processed' it."""

import contextlib
import socket
import threading
import time


class BadGateway:
    def __init__(self, reply) -> None:
        """``reply(conn, request_bytes)`` writes whatever it likes to the socket."""
        self.reply = reply
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn) -> None:
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + body)
            self.reply(conn, head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def truncated_body(conn, request) -> None:
    """200 announcing 400 bytes of JSON, then the connection drops after 20 (a reset mid-answer)."""
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"id": "ch_1", "sta')


def deeply_nested(conn, request) -> None:
    """200 whose body is syntactically valid JSON nested 100 000 deep (not a JSON object the client can use)."""
    body = b"[" * 100_000 + b"]" * 100_000
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def bad_gzip(conn, request) -> None:
    """200 that claims gzip but is not."""
    body = b"not gzip at all"
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def trickle(seconds: float, every: float = 0.4):
    """200 whose body arrives one byte every ``every`` s for ``seconds`` s: no single read ever times out."""

    def reply(conn, request) -> None:
        padding = int(seconds / every)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(padding + 2).encode()
            + b"\r\n\r\n{"
        )
        for _ in range(padding):
            time.sleep(every)
            conn.sendall(b" ")
        conn.sendall(b"}")

    return reply
