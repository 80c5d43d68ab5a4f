"""Run the Autobahn TestSuite fuzzing server on 127.0.0.1 only, without a web UI.

`wstest -m fuzzingserver` listens on every interface and adds a web server on
port 8080; the conformance runner needs neither. This does what wstest's
fuzzingserver mode does, minus those. The port is the one in the spec's "url".
Usage: python2.7 fuzzingserver.py SPEC.json
"""
from __future__ import print_function

import json
import sys

from autobahntestsuite import choosereactor  # noqa: F401  wstest imports it before the reactor, so do we
from autobahntestsuite.fuzzing import FuzzingServerFactory
from twisted.internet import reactor


def main():
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    factory = FuzzingServerFactory(spec)
    if factory.isSecure:
        sys.exit("wss:// is not supported here; use a ws:// url")
    reactor.listenTCP(factory.port, factory, interface="127.0.0.1")
    print("Listening on 127.0.0.1:%d" % factory.port)
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
