"""An SMTP receiver that takes mail only from a client that upgraded to TLS
(STARTTLS) and then logged in (AUTH PLAIN or LOGIN) with the one username
and password it is given; what it accepts goes to a Maildir. aiosmtpd's
command line cannot require a login, so scripts/test-servers runs this.

Usage: smtp-login-receiver.py HOST PORT MAILDIR CERT KEY USERNAME PASSWORD_FILE
Runs until SIGTERM or SIGINT.
"""

import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    host, port, maildir, cert, key, username, password_file = sys.argv[1:8]
    with open(password_file, encoding="utf-8") as f:
        password = f.read().strip()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == username
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        Mailbox(maildir),
        hostname=host,
        port=int(port),
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
