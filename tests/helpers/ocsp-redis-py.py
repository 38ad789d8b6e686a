"""Connect with redis-py and ssl_validate_ocsp_stapled=True, then PING.

    python3 ocsp-redis-py.py PORT PKI_DIR

Prints "PONG" and exits 0 when redis-py accepted the stapled status, or
prints the error and exits 1 when it refused the connection.
"""
import os
import sys

import redis

port, pki = int(sys.argv[1]), sys.argv[2]
client = redis.Redis(
    host="127.0.0.1",
    port=port,
    ssl=True,
    ssl_certfile=os.path.join(pki, "client.crt"),
    ssl_keyfile=os.path.join(pki, "client.key"),
    ssl_ca_certs=os.path.join(pki, "ca.crt"),
    ssl_validate_ocsp_stapled=True,
    socket_timeout=10,
)
try:
    client.ping()
except Exception as err:  # redis-py raises ConnectionError for a bad staple
    print(f"refused: {err}")
    sys.exit(1)
print("PONG")
