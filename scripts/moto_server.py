"""moto's server, with DynamoDB requests taken one at a time.

Real DynamoDB applies each write to an item atomically: a conditional update re-checks its
condition against the item as it is, so concurrent conditional updates never both pass. moto
serves requests on threads and its DynamoDB backend has no lock, so two updates can read the
same item and both pass. One lock around DynamoDB's requests gives the emulator the atomicity
the metering code (and its 200-at-once admission test) relies on. Other services are as moto
has them. Run as `python3 scripts/moto_server.py <moto.server arguments>`.
"""

import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_one_at_a_time = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):
    with _one_at_a_time:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action

if __name__ == "__main__":
    main()
