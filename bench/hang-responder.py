#!/usr/bin/python3
"""An "OCSP responder" on 127.0.0.1 that reads each request and never answers.

    hang-responder.py PORT LOGFILE

Accepts connections, reads the HTTP request (headers + Content-Length body),
appends "<unix time> hang" to LOGFILE once the request is complete, then keeps
the connection open without sending a byte until the client gives up. Prints
"listening" once bound. Standard library only.

(tests/helpers/ocsp-responder.tcl has a "hang" mode meant to do the same; see
bench/README.md for why the benchmark carries its own.)
"""
import selectors
import socket
import sys
import time

port, logfile = int(sys.argv[1]), sys.argv[2]
sel = selectors.DefaultSelector()
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(16)
sel.register(listener, selectors.EVENT_READ)
print("hang-responder: listening on 127.0.0.1:%d" % port, flush=True)

pending = {}  # socket -> bytes read so far (None once the request is complete)


def request_complete(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    return len(body) >= length


while True:
    for key, _ in sel.select():
        sock = key.fileobj
        if sock is listener:
            conn, _ = listener.accept()
            pending[conn] = b""
            sel.register(conn, selectors.EVENT_READ)
            continue
        chunk = sock.recv(65536)
        if not chunk:  # the client gave up: drop our end too
            sel.unregister(sock)
            sock.close()
            del pending[sock]
        elif pending[sock] is not None:
            pending[sock] += chunk
            if request_complete(pending[sock]):
                pending[sock] = None  # complete: from now on, silence
                with open(logfile, "a") as log:
                    log.write("%d hang\n" % time.time())
