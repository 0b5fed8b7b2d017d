"""An HTTPS server for the tests, on 127.0.0.1 only: GET answers 200 with
the request's Host header and path, so a test sees where its request went
and under which name. Its certificate (made by scripts/test-servers) is
for tracker.handoff.test, signed by the test CA.

    https-receiver.py HOST PORT CERT KEY
"""
import http.server
import ssl
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"host={self.headers.get('Host')} path={self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("https-receiver: " + (fmt % args) + "\n")


def main():
    host, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    server = http.server.ThreadingHTTPServer((host, port), Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
