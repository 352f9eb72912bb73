"""A TCP proxy for the tests that can lose its upstream on demand, as a node loses its
database: while the control file says `down`, every connection is closed and new ones are
closed at once; `up` (or no file) forwards again.

    python tcp_proxy.py --port PORT --to HOST:PORT --control FILE
"""
import argparse, os, socket, threading, time


def state(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "up"


def pipe(a, b, alive):
    try:
        while alive[0]:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        alive[0] = False
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--control", required=True)
    args = p.parse_args()
    host, port = args.to.rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(128)
    conns = []
    lock = threading.Lock()

    def watch():
        while True:
            if state(args.control) == "down":
                with lock:
                    for c, u, alive in conns:
                        alive[0] = False
                        for s in (c, u):
                            try:
                                s.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass
                    conns.clear()
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        if state(args.control) == "down":
            client.close()
            continue
        try:
            upstream = socket.create_connection((host, int(port)))
        except OSError:
            client.close()
            continue
        alive = [True]
        with lock:
            conns.append((client, upstream, alive))
        threading.Thread(target=pipe, args=(client, upstream, alive), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client, alive), daemon=True).start()


if __name__ == "__main__":
    main()
