"""The centre's side of the catalogue phase, in its own process as in production: the real
``central.publisher.Publisher.push`` (``Store.put_downlink`` signs and keeps each cabinet's copy,
then it goes out retained on ``kiosk/v1/{cabinet}/down/catalog``) for every cabinet named on
stdin, one id a line, after a line ``go``.

    python push_catalog.py DB_URL MQTT_URL CATALOG_JSON < ids

Prints ``ready`` once connected, then one JSON line: seconds to sign and keep every copy and
publish it (``pushed_s``), and until paho had every PUBACK (``flushed_s``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    db_url, mqtt_url, catalog_path = sys.argv[1:4]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from central.publisher import Publisher
    from central.store import Store

    catalog = json.loads(Path(catalog_path).read_text(encoding="utf-8"))
    store = Store(db_url)
    pub = Publisher(store, mqtt_url).start()
    if not pub.wait_connected(30):
        print(json.dumps({"error": "the publisher did not connect"}), flush=True)
        return 1
    print("ready", flush=True)
    cabinets = []
    for line in sys.stdin:
        if line.strip() == "go":
            break
        cabinets.append(line.strip())
    t0 = time.perf_counter()
    for cab in cabinets:
        pub.push(cab, "catalog", catalog)
    pushed = time.perf_counter() - t0
    while True:  # paho keeps each publish here until its PUBACK (as mqtt_ingest._flush_acks)
        with pub.client._out_message_mutex:
            if not pub.client._out_messages:
                break
        time.sleep(0.01)
    flushed = time.perf_counter() - t0
    print(json.dumps({"pushed_s": pushed, "flushed_s": flushed}), flush=True)
    pub.stop()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
